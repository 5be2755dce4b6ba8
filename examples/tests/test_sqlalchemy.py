"""ORM users: a SQLAlchemy 2 session bound to clinic_db, so the ORM's work is rolled back too.

The recipe: an engine whose only connection is clinic_db's psycopg connection
(``creator`` + ``StaticPool``), whose dialect may not roll back, commit or close
it (the test's transaction belongs to clinic_db), and a session that joins the
transaction with savepoints, so ``session.commit()`` releases a savepoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool


class Base(DeclarativeBase):
    pass


class Clinic(Base):
    __tablename__ = "clinics"
    __table_args__ = {"schema": "clinic"}

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String)
    slug: Mapped[str] = mapped_column(String)


@pytest.fixture
def session(clinic_db) -> Iterator[Session]:
    engine = create_engine("postgresql+psycopg://", creator=lambda: clinic_db, poolclass=StaticPool)
    # The transaction and the connection belong to clinic_db: SQLAlchemy may not end or close them.
    dialect = engine.dialect
    dialect.do_rollback = dialect.do_commit = dialect.do_close = lambda dbapi_connection: None
    with (
        engine.connect() as connection,
        Session(bind=connection, join_transaction_mode="create_savepoint") as orm,
    ):
        yield orm
    engine.dispose()


def test_orm_commit_is_a_savepoint_and_is_audited(session, clinic_db):
    session.add(Clinic(name="ORM Clinic", slug="orm"))
    session.commit()
    (clinic_id,) = clinic_db.execute("SELECT id FROM clinic.clinics WHERE slug = 'orm'").fetchone()
    audited = clinic_db.execute(
        "SELECT count(*) FROM audit.audit_logs WHERE table_name = 'clinics' AND record_id = %s",
        (str(clinic_id),),
    ).fetchone()[0]
    assert audited == 1


def test_the_orm_rows_were_rolled_back(session):
    assert session.scalars(select(Clinic).where(Clinic.slug == "orm")).all() == []
