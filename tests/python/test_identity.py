"""Issue 4: identity documents whose signatures really verify, with openssl."""
import os
import subprocess
import urllib.request

from conftest import IMDS


def fetch(url):
    with urllib.request.urlopen(url) as r:
        return r.read()


def openssl(*args, cwd):
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=30)


def test_signatures_verify_with_openssl(serve, tmp_path):
    state = tmp_path / "state"
    cert = subprocess.run([IMDS, "identity", "certificate", "--state-dir", str(state)], capture_output=True, text=True, timeout=60)
    assert cert.returncode == 0, cert.stderr
    assert cert.stdout.startswith("-----BEGIN CERTIFICATE-----")
    (tmp_path / "cert.pem").write_text(cert.stdout)

    s = serve(None, state_dir=str(state))
    base = s.data_url + "/latest/dynamic/instance-identity/"
    assert fetch(base) == b"rsa2048\npkcs7\ndocument\nsignature"
    document = fetch(base + "document")
    (tmp_path / "document").write_bytes(document)
    tampered = document.replace(b"t3.micro", b"t3.large")
    assert tampered != document
    (tmp_path / "tampered").write_bytes(tampered)

    for name in ["pkcs7", "rsa2048", "signature"]:
        body = fetch(base + name).decode()
        lines = body.split("\n")
        assert not body.endswith("\n") and "BEGIN" not in body
        assert all(len(l) == 76 for l in lines[:-1]) and 0 < len(lines[-1]) <= 76

    for name in ["pkcs7", "rsa2048"]:
        (tmp_path / f"{name}.pem").write_text("-----BEGIN PKCS7-----\n" + fetch(base + name).decode() + "\n-----END PKCS7-----\n")
        ok = openssl("smime", "-verify", "-in", f"{name}.pem", "-inform", "PEM", "-content", "document",
                     "-certfile", "cert.pem", "-noverify", cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        bad = openssl("smime", "-verify", "-in", f"{name}.pem", "-inform", "PEM", "-content", "tampered",
                      "-certfile", "cert.pem", "-noverify", cwd=tmp_path)
        assert bad.returncode != 0

    (tmp_path / "signature.b64").write_bytes(fetch(base + "signature"))
    assert openssl("base64", "-d", "-in", "signature.b64", "-out", "signature.bin", cwd=tmp_path).returncode == 0
    assert openssl("x509", "-in", "cert.pem", "-pubkey", "-noout", "-out", "pub.pem", cwd=tmp_path).returncode == 0
    ok = openssl("dgst", "-sha256", "-verify", "pub.pem", "-signature", "signature.bin", "document", cwd=tmp_path)
    assert ok.returncode == 0 and b"Verified OK" in ok.stdout
    bad = openssl("dgst", "-sha256", "-verify", "pub.pem", "-signature", "signature.bin", "tampered", cwd=tmp_path)
    assert bad.returncode != 0


def test_identity_key_survives_restart(serve, tmp_path):
    state = str(tmp_path / "state")
    a = serve(None, state_dir=state)
    sig1 = fetch(a.data_url + "/latest/dynamic/instance-identity/signature")
    a.stop()
    assert os.path.exists(os.path.join(state, "identity-key.pem"))
    assert oct(os.stat(os.path.join(state, "identity-key.pem")).st_mode & 0o777) == "0o600"
    b = serve(None, state_dir=state)
    # Same key and same document (launch time differs) -> verify with the same certificate instead.
    cert = subprocess.run([IMDS, "identity", "certificate", "--state-dir", state], capture_output=True, text=True).stdout
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "document").write_bytes(fetch(b.data_url + "/latest/dynamic/instance-identity/document"))
    (tmp_path / "p.pem").write_text("-----BEGIN PKCS7-----\n" + fetch(b.data_url + "/latest/dynamic/instance-identity/pkcs7").decode() + "\n-----END PKCS7-----\n")
    ok = openssl("smime", "-verify", "-in", "p.pem", "-inform", "PEM", "-content", "document", "-certfile", "cert.pem", "-noverify", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert sig1


def test_identity_certificate_needs_a_source():
    r = subprocess.run([IMDS, "identity", "certificate"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "--state-dir" in r.stderr
