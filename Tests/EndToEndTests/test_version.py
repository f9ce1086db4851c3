"""One version number: the binary, debian/changelog, CHANGELOG.md and the manual pages agree."""
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_place_names_the_binarys_version():
    binary = os.environ["SMIME_MILTER"]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    changelog = (ROOT / "debian/changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"smime-milter ({version}) "), changelog
    headings = [line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert headings[0].startswith(f"## {version} "), headings[0]
    for page in ["man/smime-milter.8", "man/smime-milter.conf.5"]:
        assert f'"smime-milter {version}"' in (ROOT / page).read_text().splitlines()[0], page
    assert f"smime-milter_{version}_amd64.deb" in (ROOT / "README.md").read_text()
