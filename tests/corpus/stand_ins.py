"""Stand-ins for the application modules that real revision files import at module level.

A revision file of a real chain may import a small piece of its application (a column type, an
enum, a helper). The corpus never installs the application: each module here is a STAND-IN,
written into the temporary project's ``stand_ins/`` folder (on ``prepend_sys_path``), holding
only the names the pinned version's revision files use. Column types keep the DDL of the
original (copied from the same wheel: their ``impl``/``load_dialect_impl``); everything that
would only run on existing rows (data migrations) raises ``StandInCalled``, so a stand-in can
never silently fake a data migration that a fresh database would run.
"""

from __future__ import annotations

_HEADER = '"""STAND-IN written by tests/corpus for {what}: not the real module."""\n\n'

_RAISER = """
class StandInCalled(RuntimeError):
    pass


def _not_here(*args, **kwargs):
    raise StandInCalled("a corpus stand-in was called: this data migration needs the real app")
"""

# Placeholder classes for names that revision files only pass around (e.g. as the pydantic
# model of a JSON column): any capitalised attribute is a fresh empty class.
_PLACEHOLDERS = """
def __getattr__(name):
    if name.startswith("_") or not name[:1].isupper():
        raise AttributeError(name)
    placeholder = type(name, (), {"__module__": __name__})
    globals()[name] = placeholder
    return placeholder
"""


def _module(what: str, body: str) -> str:
    return _HEADER.format(what=what) + body.lstrip("\n")


def _packages(modules: dict[str, str], what: str) -> dict[str, str]:
    """Add an ``__init__.py`` to every package folder that has none."""
    result = dict(modules)
    for path in list(modules):
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            init = "/".join([*parts[:depth], "__init__.py"])
            result.setdefault(init, _module(what, ""))
    return result


# keystone 30.0.0: 27e647c0fad4_initial_version.py imports oslo_log, oslo_utils and four
# keystone modules for two column types, two enums' values and one config default.
_KS = "keystone 30.0.0 (keystone/common/sql/core.py and friends)"
KEYSTONE = _packages(
    {
        "oslo_log/log.py": _module(_KS, "from logging import getLogger  # noqa: F401\n"),
        "oslo_utils/timeutils.py": _module(
            _KS,
            "import datetime\n\n\ndef utcnow():\n"
            "    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)\n",
        ),
        "keystone/conf/__init__.py": _module(
            _KS,
            "from types import SimpleNamespace\n\n"
            "CONF = SimpleNamespace(saml=SimpleNamespace(relay_state_prefix='ss:mem:'))\n",
        ),
        "keystone/common/sql/__init__.py": _module(
            _KS,
            """
import sqlalchemy as sql
from sqlalchemy import types as sql_types

Text = sql.Text


class JsonBlob(sql_types.TypeDecorator):
    impl = sql.Text
    cache_ok = True


class DateTimeInt(sql_types.TypeDecorator):
    impl = sql.BigInteger
    cache_ok = True
""",
        ),
        "keystone/assignment/backends/sql.py": _module(
            _KS,
            """
class AssignmentType:
    USER_PROJECT = 'UserProject'
    GROUP_PROJECT = 'GroupProject'
    USER_DOMAIN = 'UserDomain'
    GROUP_DOMAIN = 'GroupDomain'
""",
        ),
        "keystone/identity/mapping_backends/mapping.py": _module(
            _KS,
            """
class EntityType:
    USER = 'user'
    GROUP = 'group'
""",
        ),
    },
    _KS,
)

# prefect 3.8.0: revision files use `import prefect` and then the column types of
# prefect.server.utilities.database; a few import pydantic models only to name a JSON
# column's model, or helpers that only run on existing rows.
_PF = "prefect 3.8.0 (prefect/server/utilities/database.py and friends)"
PREFECT = _packages(
    {
        "prefect/__init__.py": _module(
            _PF,
            """
import prefect.server.schemas.core
import prefect.server.schemas.schedules
import prefect.server.schemas.states
import prefect.server.utilities.database  # noqa: F401
""",
        ),
        "prefect/server/utilities/database.py": _module(
            _PF,
            """
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import CHAR, TypeDecorator


class Timestamp(TypeDecorator):
    impl = sa.TIMESTAMP(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        elif dialect.name == "sqlite":
            return dialect.type_descriptor(sqlite.DATETIME())
        else:
            return dialect.type_descriptor(sa.TIMESTAMP(timezone=True))


class UUID(TypeDecorator):
    impl = sa.Uuid()
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID())
        else:
            return dialect.type_descriptor(CHAR(36))


class JSON(TypeDecorator):
    impl = postgresql.JSONB
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        elif dialect.name == "sqlite":
            return dialect.type_descriptor(sqlite.JSON(none_as_null=True))
        else:
            return dialect.type_descriptor(sa.JSON(none_as_null=True))


class Pydantic(TypeDecorator):
    impl = JSON
    cache_ok = True

    def __init__(self, pydantic_type, sa_column_type=None):
        super().__init__()
        self._pydantic_type = pydantic_type
        if sa_column_type is not None:
            self.impl = sa_column_type
""",
        ),
        "prefect/server/utilities/schemas.py": _module(_PF, "class PrefectBaseModel:\n    pass\n"),
        "prefect/server/schemas/core.py": _module(_PF, _PLACEHOLDERS),
        "prefect/server/schemas/states.py": _module(_PF, _PLACEHOLDERS),
        "prefect/server/schemas/schedules.py": _module(_PF, "SCHEDULE_TYPES = object\n"),
        "prefect/server/events/actions.py": _module(_PF, _PLACEHOLDERS),
        "prefect/server/events/schemas/automations.py": _module(_PF, _PLACEHOLDERS),
        "prefect/server/events/schemas/events.py": _module(_PF, _PLACEHOLDERS),
        "prefect/blocks/core.py": _module(
            _PF,
            _RAISER
            + "\n\nclass Block:\n    _calculate_schema_checksum = staticmethod(_not_here)\n",
        ),
        "prefect/utilities/slugify.py": _module(_PF, _RAISER + "\n\nslugify = _not_here\n"),
        "prefect/logging/loggers.py": _module(
            _PF, "from logging import getLogger as get_logger  # noqa: F401\n"
        ),
        # Imported inside upgrade() of 9e83011d1f2a; only used for rows that exist.
        "prefect/server/concurrency/lease_storage.py": _module(
            _PF, _RAISER + "\n\ndef get_concurrency_lease_storage():\n    return _not_here\n"
        ),
    },
    _PF,
)

# optuna 5.0.0: v2.4.0.a and v3.0.0.a import optuna's enums and distribution helpers for
# their data migrations; v3.0.0.c/d import numpy for two float32 limits and isnan.
_OP = "optuna 5.0.0 (optuna/study, optuna/trial, optuna/distributions) and numpy"
OPTUNA = _packages(
    {
        "optuna/study.py": _module(
            _OP,
            """
import enum


class StudyDirection(enum.IntEnum):
    NOT_SET = 0
    MINIMIZE = 1
    MAXIMIZE = 2
""",
        ),
        "optuna/trial.py": _module(
            _OP,
            """
import enum


class TrialState(enum.IntEnum):
    RUNNING = 0
    COMPLETE = 1
    PRUNED = 2
    FAIL = 3
    WAITING = 4
""",
        ),
        "optuna/distributions.py": _module(
            _OP,
            _RAISER
            + """

_convert_old_distribution_to_new_distribution = _not_here
distribution_to_json = _not_here
json_to_distribution = _not_here


class BaseDistribution:
    def __init__(self, *args, **kwargs):
        _not_here()


class FloatDistribution(BaseDistribution):
    pass


class IntDistribution(BaseDistribution):
    pass


class UniformDistribution(BaseDistribution):
    pass


class LogUniformDistribution(BaseDistribution):
    pass


class DiscreteUniformDistribution(BaseDistribution):
    pass


class IntUniformDistribution(BaseDistribution):
    pass


class IntLogUniformDistribution(BaseDistribution):
    pass
""",
        ),
        "numpy/__init__.py": _module(
            _OP,
            """
from math import isnan  # noqa: F401

float32 = "float32"


class finfo:
    def __init__(self, dtype):
        assert dtype == "float32"
        self.max = 3.4028234663852886e38
        self.min = -3.4028234663852886e38
""",
        ),
    },
    _OP,
)
