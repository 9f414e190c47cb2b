"""Personal data: detection on Chinese and English tables, masking that leaves aggregates,
marks stored with the dataset at import and editable, role setting."""

from __future__ import annotations

import pandas as pd
import pytest

from zhinao.agent import personal
from zhinao.errors import InvalidRequest
from zhinao.maas.tenancy import Principal
from zhinao.settings import Settings

TENANT = 1
_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(first17: str) -> str:
    """An ID number with its ISO 7064 MOD 11-2 check digit (computed here, independently)."""
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, _W)) % 11]


IDS = [resident_id(p) for p in ("11010119900307123", "44030419851112456", "31010419720401789",
                                "51010719990830111")]


def people() -> pd.DataFrame:
    return pd.DataFrame({
        "客户姓名": ["张三", "李小龙", "王芳", "欧阳娜娜"],
        "手机号码": ["13812345678", "+86 139 0000 1111", "159-8765-4321", "18600001234"],
        "身份证号": IDS,
        "家庭住址": ["北京市海淀区中关村大街1号", "上海市浦东新区世纪大道100号", "广州市天河区体育西路8号",
                 "深圳市南山区科技园路2号"],
        "套餐": ["畅享", "智享", "畅享", "5G尊享"],
        "月费": [58, 88, 58, 128],
        "full_name": ["John Smith", "Mary Jones", "Li Wei", "Ann Lee"],
        "email": ["john@example.com", "mary@x.org", "lw@qq.com", "ann@163.com"],
        "contact_phone": ["+1 (415) 555-2671", "+44 20 7946 0958", "+49 30 1234567", "+33 1 23 45 67 89"],
        "product_name": ["Fiber", "DSL", "Fiber", "DSL"],
        "msisdn": [13900001111, 13700002222, 18800003333, 15000004444],
        "PhoneService": ["Yes", "No", "Yes", "Yes"],
    })


def test_detect_finds_phones_ids_names_addresses_emails_in_zh_and_en():
    marks = personal.detect(people())
    assert marks == {"客户姓名": "name", "手机号码": "phone", "身份证号": "id_number", "家庭住址": "address",
                     "full_name": "name", "email": "email", "contact_phone": "phone", "msisdn": "phone"}
    assert personal.is_id_number(IDS[0]) and not personal.is_id_number(IDS[0][:17] + "0" if IDS[0][-1] != "0"
                                                                          else IDS[0][:17] + "1")


def test_detect_leaves_the_telco_table_alone():
    from zhinao.analytics import datasets

    for key in ("telco", "milan_total", "groceries"):
        assert personal.detect(datasets.tabular(key)) == {}, key


def test_mask_shapes_and_aggregates_untouched():
    cols = ["客户姓名", "手机号码", "身份证号", "n", "avg_fee"]
    rows = [["张三", "13812345678", IDS[0], 3, 58.5], ["欧阳娜娜", None, IDS[1], 1, 88.0]]
    out = personal.mask(cols, rows, {"客户姓名", "手机号码", "身份证号"})
    assert out[0] == ["张*", "138****5678", IDS[0][:3] + "*" * 11 + IDS[0][-4:], 3, 58.5]
    assert out[1][0] == "欧***" and out[1][1] is None and out[1][3:] == [1, 88.0]
    assert rows[0][0] == "张三"  # the input is not changed
    # a count aliased with a personal column's name is an aggregate, not a phone number
    assert personal.mask(["手机号码"], [[42]], {"手机号码"}) == [[42]]
    kinds = personal.mask(["full_name", "email"], [["John Smith", "john@example.com"]],
                          {"full_name": "name", "email": "email"})
    assert kinds == [["J. S***", "j***@example.com"]]


def test_roles_setting_decides_who_sees_personal_columns():
    admin = Principal(tenant_id=1, tenant="t", user_id=1, username="a", key_id=None, role="admin")
    member = Principal(tenant_id=1, tenant="t", user_id=2, username="m", key_id=None, role="member")
    s = Settings()
    assert s.agent_personal_roles == "admin,operator"
    assert personal.may_see_personal(admin, s) and not personal.may_see_personal(member, s)
    wide = Settings(agent_personal_roles="admin,member")
    assert personal.may_see_personal(member, wide)


@pytest.fixture
def manager(tmp_path):
    from zhinao.analytics.workspace import WorkspaceManager
    from zhinao.capability import migration_dirs
    from zhinao.store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'meta.db'}")
    db.migrate(migration_dirs())
    m = WorkspaceManager(db, tmp_path / "home")
    m.create(TENANT, "w")
    yield m
    db.dispose()


def test_marks_stored_at_import_editable_and_kept_on_reimport(manager):
    ds = manager.save_frame(TENANT, "w", "customers", people(), source="test")
    assert ds["profile"]["personal"]["手机号码"] == "phone" and "套餐" not in ds["profile"]["personal"]
    out = personal.set_personal(manager, TENANT, "w", "customers", {"product_name": "name", "msisdn": None})
    assert out["profile"]["personal"]["product_name"] == "name" and "msisdn" not in out["profile"]["personal"]
    assert manager.dataset(TENANT, "w", "customers")["profile"]["personal"] == out["profile"]["personal"]
    again = manager.save_frame(TENANT, "w", "customers", people(), source="test", replace=True)
    assert again["profile"]["personal"] == out["profile"]["personal"]  # the edits survive a re-import
    assert personal.workspace_marks(manager, TENANT, "w") == {"customers": out["profile"]["personal"]}
    assert personal.result_personal(["手机号码", "n"], {"customers": out["profile"]["personal"]}) == {"手机号码": "phone"}
    with pytest.raises(InvalidRequest, match="no column"):
        personal.set_personal(manager, TENANT, "w", "customers", {"nope": "phone"})
    with pytest.raises(InvalidRequest, match="unknown personal kind"):
        personal.set_personal(manager, TENANT, "w", "customers", {"套餐": "secret"})
