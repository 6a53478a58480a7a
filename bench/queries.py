"""The GraphQL documents the benchmarks (and tests/test_statement_counts.py) measure."""

from __future__ import annotations

# A client's home screen: who am I, what is new, and each dossier with where it stands.
DASHBOARD = """
query ClientDashboard {
  me { ... on Profile { id fullName unreadMessageCount } }
  unreadNotificationCount
  notifications(first: 10) {
    pageInfo { hasNextPage endCursor }
    nodes { id title message read actionUrl createdAt }
  }
  dossiers(first: 100) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id type status createdAt updatedAt unreadMessageCount
      product { id code name }
      currentStep {
        id position startedAt dueAt
        step { id code label }
        documents {
          id status updatedAt
          documentType { id code label }
          currentVersion { id versionNumber fileName mimeType uploadedAt }
        }
      }
    }
  }
}
"""

# An agent's work list: versions waiting for review, oldest first, with their context.
REVIEW_QUEUE = """
query ReviewQueue($first: Int!) {
  reviewQueue(first: $first) {
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id waitingSince
        version { id versionNumber fileName mimeType fileSizeBytes uploadedAt }
        document { id status documentType { id code label } }
        dossier { id status client { id fullName } product { id name } }
        stepInstance { id position step { id label } assignedTo { id name } }
      }
    }
  }
}
"""

SEND_MESSAGE = """
mutation SendMessage($input: SendMessageInput!) {
  sendMessage(input: $input) {
    message { id content senderType createdAt }
    cursor
    userErrors { code message }
  }
}
"""

MESSAGE_ADDED = """
subscription MessageAdded($dossierId: ID!) {
  messageAdded(dossierId: $dossierId) { cursor node { id content senderType createdAt } }
}
"""

# An agent's dossier list, one filter at a time, with its count when asked.
AGENT_DOSSIERS = """
query AgentDossiers($filter: DossierFilter, $count: Boolean!) {
  dossiers(filter: $filter, first: 50) {
    totalCount @include(if: $count)
    pageInfo { hasNextPage endCursor }
    nodes {
      id status createdAt
      client { id fullName }
      product { id name }
      currentStep { id position dueAt step { id label } assignedTo { id name } }
    }
  }
}
"""
