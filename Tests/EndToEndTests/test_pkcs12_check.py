"""scripts/pkcs12-gpgsm-check.py predicts from a PKCS#12 file alone whether gpgsm 2.2 can decrypt
it, so that the test fixtures never hand gpgsm a file it refuses. Two files of a throwaway test
key (password "test"), made by OpenSSL as the fixtures make theirs: one whose salt meets gpgsm's
key-derivation fault and one whose salt does not. The prediction must agree with gpgsm itself;
when a gpgsm without the fault arrives, the first test fails and the check can go."""

import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
CHECK = REPOSITORY / "scripts" / "pkcs12-gpgsm-check.py"
FILES = Path(__file__).resolve().parent / "pkcs12"


def check(path):
    return subprocess.run(["python3", str(CHECK), str(path), "test"], capture_output=True, text=True)


def gpgsm_imports(path, home):
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    try:
        result = subprocess.run(
            ["gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", str(path)],
            input="test", capture_output=True, text=True, env={"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"})
        return result.returncode == 0 and "secret keys imported: 1" in result.stderr, result.stderr
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


@pytest.mark.parametrize("name, usable", [("unsafe.p12", False), ("safe.p12", True)])
def test_the_prediction_agrees_with_gpgsm(name, usable, tmp_path):
    predicted = check(FILES / name)
    assert predicted.returncode == (0 if usable else 1), predicted.stdout + predicted.stderr
    imported, output = gpgsm_imports(FILES / name, tmp_path / "gnupg")
    assert imported == usable, output


def test_a_file_that_is_not_pkcs12_is_an_error(tmp_path):
    other = tmp_path / "other.p12"
    other.write_bytes(b"not a PKCS#12 file")
    result = check(other)
    assert result.returncode == 2
    assert "no PBE-SHA1-3DES bag" in result.stderr
