#!/usr/bin/env python3
"""A real SMTP server for the email tests (aiosmtpd): plain, STARTTLS or implicit TLS, optional
AUTH (PLAIN and LOGIN, user "shop" / password "s3cret"), saves each message as <n>.eml in a folder
and refuses recipients whose address starts with "reject" (550). Prints "READY <port> <cert>".
Usage: smtp_server.py MODE(plain|starttls|tls) AUTH(auth|noauth) OUT_DIR PORT"""
import datetime, ipaddress, os, ssl, sys, time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

mode, auth, out_dir, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
os.makedirs(out_dir, exist_ok=True)
if port == 0:  # any free port
    import socket
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()


def make_cert():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(out_dir, "cert.pem"), os.path.join(out_dir, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


class Handler:
    count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        Handler.count += 1
        with open(os.path.join(out_dir, f"{Handler.count}.eml"), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(os.path.join(out_dir, f"{Handler.count}.env"), "w") as f:
            f.write(f"{envelope.mail_from}\n" + "\n".join(envelope.rcpt_tos) + f"\nauth={getattr(session, 'auth_data', None) is not None}\n")
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword) and auth_data.login == b"shop" and auth_data.password == b"s3cret":
        return AuthResult(success=True)
    return AuthResult(success=False, handled=False)


context, cert_path = make_cert()
kwargs = {}
if auth == "auth":
    # aiosmtpd counts only STARTTLS as TLS for AUTH; with implicit TLS the connection is encrypted anyway.
    kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=(mode == "starttls"))
if mode == "starttls":
    kwargs.update(tls_context=context, require_starttls=True)
elif mode == "tls":
    kwargs.update(ssl_context=context)
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print(f"READY {port} {cert_path}", flush=True)
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    controller.stop()
