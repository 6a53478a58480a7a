from tests.factories import make_client, make_dossier
from tests.helpers import gql

ME_AND_DOSSIERS = """
query { me { ... on Profile { id email } } dossiers { totalCount nodes { id status } } }
"""


async def test_client_sees_own_dossier(client):
    account = await make_client()
    dossier = await make_dossier(account)
    data = await gql(client, ME_AND_DOSSIERS, token=account.token)
    assert data["me"]["email"] == account.email
    assert data["dossiers"]["totalCount"] == 1
    assert data["dossiers"]["nodes"][0] == {"id": str(dossier.id), "status": "IN_PROGRESS"}
