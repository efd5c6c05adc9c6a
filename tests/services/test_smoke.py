from services import members
from tests.factories import admin, make_member, make_tenant


def test_create_and_list(engine):
    tenant = make_tenant()
    created = make_member(tenant, name="髙橋　①子", kana="たかはし　いちこ")
    listed = members.list_members(admin(tenant))
    assert [m.id for m in listed] == [created.id]
    assert listed[0].name == "髙橋　①子"
    assert listed[0].kana == "タカハシ　イチコ"
