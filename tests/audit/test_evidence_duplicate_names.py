"""A package holding two files of the same name is refused: readers disagree on which copy they show."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest

from audit.chain import public_key_pem
from audit.evidence_verify import verify_package
from tests.audit.test_evidence_verify import export_audit_log

pytestmark = pytest.mark.django_db

FORGED = b'id,action\r\n1,"nothing happened here"\r\n'


def _members(data: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(data) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def test_a_second_member_of_the_same_name_is_refused(db, tmp_path: Path):
    """Two members named audit_log.csv: the verifier reads the last (zipfile's name map), a person's
    unzip tool or spreadsheet may show the first. A package whose content depends on the tool that opens
    it must not verify."""
    genuine = tmp_path / "genuine.zip"
    genuine.write_bytes(export_audit_log())
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name, and writes it
        out.writestr("audit_log.csv", FORGED)  # first in the archive
        for info, content in _members(genuine):
            out.writestr(info, content)
    with zipfile.ZipFile(forged) as archive:
        assert [info.filename for info in archive.infolist()].count("audit_log.csv") == 2
    problems, _ = verify_package(forged, expected_public_key=public_key_pem())
    assert problems, "a package with two different audit_log.csv members verified"
