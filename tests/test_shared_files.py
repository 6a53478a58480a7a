"""Files the firm shares with a dossier (issue 18, item 4), through the API: a real
multipart upload, the signed download, chat attachments."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.models import Event, Notification, SharedFile
from app.models.enums import EventType
from tests.documents_support import PREFLIGHT, make_exe, make_pdf, multipart_body
from tests.factories import make_agent, make_client, make_dossier
from tests.helpers import count_statements, error_codes, gql

SHARE = """
mutation Share($input: ShareFileInput!) {
  shareFile(input: $input) {
    sharedFile { id fileName mimeType fileSizeBytes note sharedBy { id } }
    userErrors { code field message }
  }
}
"""
SHARED = """
query($id: ID!) {
  dossier(id: $id) {
    sharedFiles(first: 10) { totalCount nodes { id fileName downloadUrl { url } } }
    timeline(last: 20) { kind ... on FileSharedEntry { fileName sharedFile { id } } }
  }
}
"""
SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) {
    message { content sharedFiles { sharedFileId fileName mimeType fileSizeBytes } }
    userErrors { code field message }
  }
}
"""


async def share(client, token, dossier_id, content, filename="letter.pdf", note=None):
    operations = {
        "query": SHARE,
        "variables": {"input": {"dossierId": str(dossier_id), "file": None, "note": note}},
    }
    body, content_type = multipart_body(operations, [(filename, content, "application/pdf")])
    headers = {"content-type": content_type, **PREFLIGHT, "authorization": f"Bearer {token}"}
    response = await client.post("/graphql", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_shared_file_is_downloaded_by_the_client_and_refused_to_another(client):
    owner, stranger, agent = await make_client(), await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    content = make_pdf("Engagement letter")
    body = await share(client, agent.token, dossier.id, content, "Lettre de mission.pdf", "Sign")
    shared = body["data"]["shareFile"]
    assert shared["userErrors"] == []
    assert shared["sharedFile"]["fileName"] == "Lettre de mission.pdf"
    assert shared["sharedFile"]["mimeType"] == "application/pdf"
    assert shared["sharedFile"]["fileSizeBytes"] == len(content)
    assert shared["sharedFile"]["sharedBy"]["id"] == agent.id

    view = (await gql(client, SHARED, {"id": str(dossier.id)}, token=owner.token))["dossier"]
    assert view["sharedFiles"]["totalCount"] == 1
    node = view["sharedFiles"]["nodes"][0]
    assert node["id"] == shared["sharedFile"]["id"]
    url = urlsplit(node["downloadUrl"]["url"])
    got = await client.get(f"{url.path}?{url.query}")
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"].startswith("application/pdf")
    assert "attachment" in got.headers["content-disposition"]
    entry = next(e for e in view["timeline"] if e["kind"] == "FILE_SHARED")
    assert entry["sharedFile"]["id"] == node["id"]
    assert await Notification.filter(user_id=owner.obj.id, template_code="file_shared").exists()

    # another client cannot reach it: the dossier answers as a missing one
    refused = await gql(
        client, SHARED, {"id": str(dossier.id)}, token=stranger.token, expect_errors=True
    )
    missing = await gql(
        client,
        SHARED,
        {"id": "00000000-0000-0000-0000-000000000000"},
        token=stranger.token,
        expect_errors=True,
    )
    assert error_codes(refused) == ["NOT_FOUND"] == error_codes(missing)
    assert refused["errors"][0]["message"] == missing["errors"][0]["message"]
    # a forged link is refused by the route
    forged = await client.get(f"/files/{node['id']}?expires=9999999999&signature=00")
    assert forged.status_code == 403


async def test_bad_shares_change_nothing_and_clients_may_not_share(client):
    owner, agent = await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    exe = (await share(client, agent.token, dossier.id, make_exe(), "tool.pdf"))["data"]
    assert [e["code"] for e in exe["shareFile"]["userErrors"]] == ["CONTENT_MISMATCH"]
    wrong = (await share(client, agent.token, dossier.id, make_pdf(), "tool.exe"))["data"]
    assert [e["code"] for e in wrong["shareFile"]["userErrors"]] == ["EXTENSION_NOT_ALLOWED"]
    empty = (await share(client, agent.token, dossier.id, b"", "empty.pdf"))["data"]
    assert [e["code"] for e in empty["shareFile"]["userErrors"]] == ["EMPTY_FILE"]
    by_client = await share(client, owner.token, dossier.id, make_pdf(), "mine.pdf")
    assert error_codes(by_client) == ["FORBIDDEN"]
    assert not await SharedFile.filter(dossier_id=dossier.id).exists()
    assert not await Event.filter(entity_id=dossier.id, event_type=EventType.FILE_SHARED).exists()


async def test_a_chat_message_attaches_a_shared_file_of_its_dossier_only(client):
    owner, other, agent = await make_client(), await make_client(), await make_agent()
    dossier = await make_dossier(owner)
    elsewhere = await make_dossier(other)
    mine = (await share(client, agent.token, dossier.id, make_pdf("a"), "a.pdf"))["data"]
    theirs = (await share(client, agent.token, elsewhere.id, make_pdf("b"), "b.pdf"))["data"]
    mine_id = mine["shareFile"]["sharedFile"]["id"]
    theirs_id = theirs["shareFile"]["sharedFile"]["id"]

    sent = (
        await gql(
            client,
            SEND,
            {
                "input": {
                    "dossierId": str(dossier.id),
                    "content": "Here it is",
                    "sharedFileIds": [mine_id],
                }
            },
            token=agent.token,
        )
    )["sendMessage"]
    assert sent["userErrors"] == []
    assert [(f["sharedFileId"], f["fileName"]) for f in sent["message"]["sharedFiles"]] == [
        (mine_id, "a.pdf")
    ]

    answers = []
    for bad in (theirs_id, "00000000-0000-0000-0000-000000000000", "not-an-id"):
        refused = (
            await gql(
                client,
                SEND,
                {
                    "input": {
                        "dossierId": str(dossier.id),
                        "content": "Wrong one",
                        "sharedFileIds": [bad],
                    }
                },
                token=owner.token,
            )
        )["sendMessage"]
        assert refused["message"] is None
        answers.append(refused["userErrors"])
    assert answers[0] == answers[1] == answers[2]
    assert [e["code"] for e in answers[0]] == ["INVALID_ATTACHMENT"]
    assert answers[0][0]["field"] == ["sharedFileIds", "0"]


LIST = """
query($first: Int!) {
  dossiers(first: 10) { nodes { id sharedFiles(first: $first) {
    totalCount pageInfo { hasNextPage endCursor } nodes { fileName } } } }
}
"""
MORE = """
query($id: ID!, $after: String!) {
  dossier(id: $id) { sharedFiles(first: 10, after: $after) { nodes { fileName } } }
}
"""


async def test_shared_files_of_a_list_of_dossiers_load_together_and_page_on(client):
    agent = await make_agent()
    costs = {}
    for dossiers in (1, 3):
        made = [await make_dossier(await make_client()) for _ in range(dossiers)]
        for dossier in made:
            for n in range(3):
                await share(client, agent.token, dossier.id, make_pdf(f"f{n}"), f"file-{n}.pdf")
        await gql(client, LIST, {"first": 2}, token=agent.token)  # warm up
        with count_statements() as statements:
            data = await gql(client, LIST, {"first": 2}, token=agent.token)
        costs[dossiers] = len(statements)
        ours = {str(d.id) for d in made}
        for node in [n for n in data["dossiers"]["nodes"] if n["id"] in ours]:
            page = node["sharedFiles"]
            assert page["totalCount"] == 3
            assert [f["fileName"] for f in page["nodes"]] == ["file-0.pdf", "file-1.pdf"]
            assert page["pageInfo"]["hasNextPage"] is True
            rest = await gql(
                client,
                MORE,
                {"id": node["id"], "after": page["pageInfo"]["endCursor"]},
                token=agent.token,
            )
            assert [f["fileName"] for f in rest["dossier"]["sharedFiles"]["nodes"]] == [
                "file-2.pdf"
            ]
    assert costs[1] == costs[3], costs  # 1 dossier in the list, then 4
