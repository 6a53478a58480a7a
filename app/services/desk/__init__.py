"""The agents' desk (issue 19, item 3): internal notes, tags, a dossier's owner and the
workload per agent. Everything here is for staff only: each entry point refuses a viewer
who is not an agent (Forbidden), whatever the id it is given."""
