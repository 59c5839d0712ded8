"""Insert parameters refuse what is not a column (SQLAlchemy would drop it)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from rn623_events.db import insert_params

pytestmark = pytest.mark.unit

TABLE = sa.Table(
    "demands", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("category", sa.Text)
)


def test_insert_params_keep_the_columns_and_refuse_a_misspelt_key() -> None:
    assert insert_params(TABLE, {"id": 1, "category": None}) == {"id": 1, "category": None}
    with pytest.raises(ValueError, match="not columns of demands: categroy"):
        insert_params(TABLE, {"id": 1, "categroy": "x"})
