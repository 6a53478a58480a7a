"""`make bench-peers` (bench/peers.py): the normalisers that map our answers and
PostGraphile's to one shape, on canned answers; what they must call equal or different."""

from __future__ import annotations

import copy

from bench.peers import (
    first_difference,
    messages_ours,
    messages_peer,
    work_list_ours,
    work_list_peer,
)

OURS_WORK_LIST = {
    "data": {
        "dossiers": {
            "pageInfo": {"hasNextPage": True, "endCursor": "x"},
            "nodes": [
                {
                    "id": "d1",
                    "status": "IN_PROGRESS",
                    "createdAt": "2026-01-02T03:04:05.123456+00:00",
                    "client": {"id": "c1", "fullName": "Ada"},
                    "product": {"id": "p1", "name": "Visa"},
                    "currentStep": {
                        "id": "si1",
                        "position": 2,
                        "dueAt": None,
                        "step": {"id": "s1", "label": "Papers"},
                        "assignedTo": {"id": "a1", "name": "Bo"},
                    },
                }
            ],
        }
    }
}

PEER_WORK_LIST = {
    "data": {
        "allDossiers": {
            "pageInfo": {"hasNextPage": True, "endCursor": "WyJ"},
            "nodes": [
                {
                    "rowId": "d1",
                    "status": "in_progress",
                    "createdAt": "2026-01-02T04:04:05.123456+01:00",
                    "profileByUserId": {"rowId": "c1", "fullName": "Ada"},
                    "productByProductId": {"rowId": "p1", "name": "Visa"},
                    "currentStep": {
                        "rowId": "si1",
                        "position": 2,
                        "dueAt": None,
                        "stepByStepId": {"rowId": "s1", "label": "Papers"},
                        "agentByAssignedTo": {"rowId": "a1", "name": "Bo"},
                    },
                }
            ],
        }
    }
}


def test_the_work_lists_are_the_same_data_whatever_the_schema_or_time_zone():
    assert first_difference(work_list_ours(OURS_WORK_LIST), work_list_peer(PEER_WORK_LIST)) is None


def test_a_different_assignee_is_caught():
    other = copy.deepcopy(PEER_WORK_LIST)
    other["data"]["allDossiers"]["nodes"][0]["currentStep"]["agentByAssignedTo"] = None
    found = first_difference(work_list_ours(OURS_WORK_LIST), work_list_peer(other))
    assert found is not None
    assert "assignedTo" in found


def message(key: str, n: int) -> dict:
    return {
        key: f"m{n}",
        "content": f"hello {n}",
        "senderType": "USER",
        "createdAt": f"2026-01-02T03:04:0{n}+00:00",
        "readAt": None,
    }


def test_messages_newest_first_there_are_oldest_first_here():
    ours = {
        "data": {
            "dossier": {
                "id": "d1",
                "status": "IN_PROGRESS",
                "messages": {
                    "pageInfo": {"hasPreviousPage": False},
                    "nodes": [message("id", 1), message("id", 2)],
                },
            }
        }
    }
    peer = {
        "data": {
            "dossierByRowId": {
                "rowId": "d1",
                "status": "IN_PROGRESS",
                "messagesByDossierId": {
                    "pageInfo": {"hasNextPage": False},
                    "nodes": [message("rowId", 2), message("rowId", 1)],
                },
            }
        }
    }
    assert first_difference(messages_ours(ours), messages_peer(peer)) is None
    peer["data"]["dossierByRowId"]["messagesByDossierId"]["nodes"].reverse()
    assert first_difference(messages_ours(ours), messages_peer(peer)) is not None
