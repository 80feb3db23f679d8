"""A real SAML 2.0 identity provider (pysaml2 on xmlsec1) for the SAML end-to-end test.

It plays KOMBIT's Context Handler: it answers a signed AuthnRequest (HTTP-Redirect binding; the
request signature is verified by pysaml2 against the SP's certificate from the SP metadata) with a
signed Response carrying OIOSAML 3 attributes, posted back by an auto-submitting form.

    python idp.py --dir DIR       prints "IDP READY <base url>" once it listens on 127.0.0.1

Routes:
    GET  /metadata           the IdP metadata (also written to DIR/idp-metadata.xml)
    POST /_sp_metadata       body: the SP metadata; the IdP trusts that SP from now on
    POST /_mode/<mode>       how the next responses are made (see MODES)
    GET  /_last              JSON about the last AuthnRequest (id, issuer, signature checked)
    GET  /sso/redirect       the SingleSignOnService (HTTP-Redirect binding)

Modes: ok (Response and Assertion signed), encrypted (signed, assertion encrypted for the SP),
unsigned, wrong_key (signed by a key not in the metadata), tampered (an attribute changed after
signing), expired (NotOnOrAfter 30 minutes ago), wrong_audience (for another SP), sha1 (signed
with RSA-SHA1, which OIOSAML 3 no longer allows).
"""

import argparse
import base64
import datetime
import json
import os
import re
import shutil
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
import saml2.sigver
from saml2.xmldsig import DIGEST_SHA1, DIGEST_SHA256, SIG_RSA_SHA1, SIG_RSA_SHA256

# pysaml2 encrypts assertions with 3DES unless told otherwise, and has no setting for it; the
# Context Handler uses AES. samael decrypts AES-128 (CBC and GCM).
saml2.sigver.pre_encryption_part.__kwdefaults__["msg_enc"] = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
_encrypt_assertion = saml2.sigver.CryptoBackendXmlSec1.encrypt_assertion


def _encrypt_assertion_aes128(self, statement, enc_key, template, key_type="aes-128", node_xpath=None):
    # samael (0.0.22) reads an EncryptedData's KeyInfo only when the KeyInfo element itself
    # declares the XML-DSig namespace (as Java/.NET XML security libraries write it); pysaml2
    # declares it once on EncryptedData. Declare it on KeyInfo too (same namespace, same meaning).
    template = re.sub(r"<(\w+):KeyInfo(?=[\s>])", r'<\1:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"', str(template))
    return _encrypt_assertion(self, statement, enc_key, template, key_type="aes-128", node_xpath=node_xpath)


saml2.sigver.CryptoBackendXmlSec1.encrypt_assertion = _encrypt_assertion_aes128

MODES = ("ok", "encrypted", "unsigned", "wrong_key", "tampered", "expired", "wrong_audience", "sha1")
OTHER_SP = "https://another-sp.example/saml"

# The test user: employed in Aarhus Kommune, with privileges in Aarhus (with an orgenhed and a KLE
# constraint) and in Læsø (CVRs from data/municipalities.csv).
AARHUS_CVR = "55133018"
LAESOE_CVR = "45973328"
ORGENHED = "6f1c0e5a-1111-4c3e-9d5e-000000000001,6f1c0e5a-1111-4c3e-9d5e-000000000002"
BPP = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpp:PrivilegeList xmlns:bpp="http://itst.dk/oiosaml/basic_privilege_profile" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:{AARHUS_CVR}">
    <Constraint Name="http://sts.kombit.dk/constraints/orgenhed/1">{ORGENHED}</Constraint>
    <Constraint Name="http://sts.kombit.dk/constraints/KLE/1">32.30.*</Constraint>
    <Privilege>http://datakube.dk/roles/usersystemrole/cube_read/1</Privilege>
    <Privilege>http://datakube.dk/roles/usersystemrole/drillthrough/1</Privilege>
  </PrivilegeGroup>
  <PrivilegeGroup Scope="urn:dk:gov:saml:cvrNumberIdentifier:{LAESOE_CVR}">
    <Privilege>http://datakube.dk/roles/usersystemrole/cube_read/1</Privilege>
  </PrivilegeGroup>
</bpp:PrivilegeList>"""

IDENTITY = {
    "https://data.gov.dk/model/core/specVersion": ["OIO-SAML-3.0"],
    "https://data.gov.dk/concept/core/nsis/loa": ["Substantial"],
    "https://data.gov.dk/model/core/eid/professional/cvr": [AARHUS_CVR],
    "https://data.gov.dk/model/core/eid/professional/orgName": ["Aarhus Kommune"],
    "https://data.gov.dk/model/core/eid/firstName": ["Karen"],
    "https://data.gov.dk/model/core/eid/lastName": ["Sørensen"],
    "https://data.gov.dk/model/core/eid/email": ["karen@aarhus.example"],
    "https://data.gov.dk/model/core/eid/privilegesIntermediate": [base64.b64encode(BPP.encode()).decode()],
}
SUBJECT = "https://data.gov.dk/model/core/eid/person/uuid/0e5f4a8e-7a2b-4c4e-9c1d-3b2f0f6d1a11"


def make_keypair(dir_, name):
    key_path = os.path.join(dir_, f"{name}-key.pem")
    cert_path = os.path.join(dir_, f"{name}-cert.pem")
    if os.path.exists(key_path) and os.path.exists(cert_path):
        return key_path, cert_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"datakube test IdP ({name})")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            )
        )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class Idp:
    def __init__(self, dir_, base):
        self.dir = dir_
        self.base = base
        self.entity_id = base + "/metadata"
        self.keys = make_keypair(dir_, "idp")
        self.other_keys = make_keypair(dir_, "other")
        self.sp_metadata = None
        self.mode = "ok"
        self.last = {}
        self.lock = threading.Lock()
        self.servers = {}
        self.rebuild()

    def config(self, keys, lifetime_minutes):
        cfg = {
            "entityid": self.entity_id,
            "name_form": NAME_FORMAT_URI,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "key_file": keys[0],
            "cert_file": keys[1],
            "encryption_keypairs": [{"key_file": keys[0], "cert_file": keys[1]}],
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
            "accepted_time_diff": 60,
            "service": {
                "idp": {
                    "name": "datakube test IdP (Context Handler stand-in)",
                    "endpoints": {
                        "single_sign_on_service": [(self.base + "/sso/redirect", BINDING_HTTP_REDIRECT)],
                    },
                    "want_authn_requests_signed": True,
                    "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": lifetime_minutes},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                }
            },
        }
        if self.sp_metadata:
            cfg["metadata"] = {"local": list(self.sp_metadata)}
        c = IdPConfig()
        c.load(cfg)
        return c

    def rebuild(self):
        self.servers = {
            "normal": Server(config=self.config(self.keys, 5)),
            "other": Server(config=self.config(self.other_keys, 5)),
            "expired": Server(config=self.config(self.keys, -30)),
        }

    def metadata_xml(self):
        return str(entity_descriptor(self.config(self.keys, 5)))

    def answer(self, query):
        """Verify and parse the AuthnRequest; return (status, content type, body)."""
        q = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
        if "SAMLRequest" not in q:
            return 400, "text/plain", "no SAMLRequest\n"
        idp = self.servers["normal"]
        try:
            req = idp.parse_authn_request(
                q["SAMLRequest"],
                BINDING_HTTP_REDIRECT,
                relay_state=q.get("RelayState"),
                sigalg=q.get("SigAlg"),
                signature=q.get("Signature"),
            )
        except Exception as e:  # pysaml2 raises for unsigned or wrongly signed requests
            return 400, "text/plain", f"AuthnRequest refused: {type(e).__name__}: {e}\n"
        msg = req.message
        acs = msg.assertion_consumer_service_url
        self.last = {
            "id": msg.id,
            "issuer": msg.issuer.text if msg.issuer is not None else None,
            "acs": acs,
            "sig_alg": q.get("SigAlg"),
            "signature_verified": True,
            "name_id_format": msg.name_id_policy.format if msg.name_id_policy is not None else None,
            "relay_state": q.get("RelayState"),
        }
        sp_entity = self.last["issuer"]
        mode = self.mode
        server = {"wrong_key": "other", "expired": "expired"}.get(mode, "normal")
        server = self.servers[server]
        kwargs = dict(
            identity=dict(IDENTITY),
            in_response_to=msg.id,
            destination=acs,
            sp_entity_id=sp_entity if mode != "wrong_audience" else OTHER_SP,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=SUBJECT),
            authn={"class_ref": "https://data.gov.dk/concept/core/nsis/loa/Substantial"},
            sign_response=mode != "unsigned",
            sign_assertion=mode != "unsigned",
            sign_alg=SIG_RSA_SHA1 if mode == "sha1" else SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA1 if mode == "sha1" else DIGEST_SHA256,
        )
        if mode == "encrypted":
            kwargs["encrypt_assertion"] = True
            kwargs["encrypt_assertion_self_contained"] = True
        resp = str(server.create_authn_response(**kwargs))
        if mode == "tampered":
            before = f">{AARHUS_CVR}<"
            assert before in resp, "the CVR attribute value is not in the signed response"
            resp = resp.replace(before, ">29189846<", 1)
        http = server.apply_binding(BINDING_HTTP_POST, resp, acs, q.get("RelayState", ""), response=True)
        return 200, "text/html; charset=utf-8", http["data"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if not shutil.which("xmlsec1"):
        sys.exit("idp.py: xmlsec1 is not installed: run tests/saml/install.sh")
    os.makedirs(args.dir, exist_ok=True)

    state = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            sys.stderr.write("idp: " + (fmt % a) + "\n")

        def send(self, status, ctype, body):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            idp = state["idp"]
            u = urlparse(self.path)
            try:
                if u.path == "/metadata":
                    return self.send(200, "application/samlmetadata+xml", idp.metadata_xml())
                if u.path == "/_last":
                    return self.send(200, "application/json", json.dumps(idp.last))
                if u.path == "/sso/redirect":
                    with idp.lock:
                        return self.send(*idp.answer(u.query))
                return self.send(404, "text/plain", "no such path\n")
            except Exception as e:
                return self.send(500, "text/plain", f"IdP error: {type(e).__name__}: {e}\n")

        def do_POST(self):
            idp = state["idp"]
            u = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                if u.path == "/_sp_metadata":
                    path = os.path.join(idp.dir, "sp-metadata.xml")
                    with open(path, "wb") as f:
                        f.write(body)
                    # The same SP under another entityID: the audience of the wrong_audience mode.
                    text = body.decode()
                    sp_entity = text.split('entityID="', 1)[1].split('"', 1)[0]
                    other = os.path.join(idp.dir, "other-sp-metadata.xml")
                    with open(other, "w") as f:
                        f.write(text.replace(f'entityID="{sp_entity}"', f'entityID="{OTHER_SP}"', 1))
                    with idp.lock:
                        idp.sp_metadata = (path, other)
                        idp.rebuild()
                    return self.send(200, "text/plain", "ok\n")
                if u.path.startswith("/_mode/"):
                    mode = u.path[len("/_mode/") :]
                    if mode not in MODES:
                        return self.send(400, "text/plain", f"unknown mode {mode}\n")
                    idp.mode = mode
                    return self.send(200, "text/plain", "ok\n")
                return self.send(404, "text/plain", "no such path\n")
            except Exception as e:
                return self.send(500, "text/plain", f"IdP error: {type(e).__name__}: {e}\n")

    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    idp = Idp(args.dir, base)
    state["idp"] = idp
    with open(os.path.join(args.dir, "idp-metadata.xml"), "w") as f:
        f.write(idp.metadata_xml())
    print(f"IDP READY {base}", flush=True)

    def exit_when_parent_goes():
        # The test keeps our stdin open; EOF means it ended (or died): stop too.
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
