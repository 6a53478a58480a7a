"""Phone channels (issue 20): SMS and WhatsApp that reach people and come back.

- `consents`: each client's opt-in / opt-out per phone channel (when, how, by whom) and
  when they last wrote there; STOP / START keywords.
- `policy`: what the delivery worker may send on a phone channel: WhatsApp only with an
  opt-in, free text inside WhatsApp's 24-hour customer-service window, the Twilio Content
  template of the notification outside it, SMS instead (the reason recorded) otherwise.
- `inbound`: an SMS or WhatsApp message Twilio brings us (POST /webhooks/twilio/inbound)
  posted in the chat of the sender's current dossier, its media stored as files.
- `relay`: an agent's chat answer sent back on the channel the client wrote from, while
  that channel's window is open.
"""
