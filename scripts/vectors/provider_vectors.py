#!/usr/bin/env python3
"""Signature vectors for GitHub, Shopify, Twilio, Standard Webhooks (v1 and v1a) and generic HMAC,
made with the providers' official libraries where one exists:
  - Standard Webhooks v1: PyPI `standardwebhooks` (sign and verify)
  - Standard Webhooks v1a: the spec's algorithm on the `cryptography` package's Ed25519 (the library has no v1a)
  - Twilio: PyPI `twilio` RequestValidator
  - Shopify: the documented algorithm, base64(HMAC-SHA256(secret, raw body))
  - GitHub: the documented example from GitHub's docs, plus HMAC-SHA256 hex
Run: python3 scripts/vectors/provider_vectors.py > Tests/DoorbellTests/Fixtures/provider-vectors.json
"""
import base64, datetime, hashlib, hmac, json, time, urllib.parse

import standardwebhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization
from twilio.request_validator import RequestValidator

now = int(time.time())
vectors = []


def add(provider, name, body, headers, secrets, expect, reason=None, url="", tolerance=300, hmac_settings=None, library=None):
    vectors.append({"provider": provider, "name": name, "body": body, "headers": headers, "url": url,
                    "secrets": secrets, "now": now, "tolerance": tolerance, "expect": expect, "reason": reason,
                    "hmac": hmac_settings, "library_accepts": library})


# GitHub: the example in GitHub's documentation, then a realistic payload.
GH_SECRET = "It's a Secret to Everybody"
add("github", "github documented example", "Hello, World!",
    {"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
     "X-GitHub-Event": "ping", "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}, [GH_SECRET], "accept")
gh_body = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "rosen-bakery/storefront"},
                      "head_commit": {"message": "Crème brûlée on the menu"}}, indent=2, ensure_ascii=False)
gh_sig = "sha256=" + hmac.new(GH_SECRET.encode(), gh_body.encode(), hashlib.sha256).hexdigest()
gh_headers = {"X-Hub-Signature-256": gh_sig, "X-GitHub-Event": "push", "X-GitHub-Delivery": "1b2c3d4e-0000-4000-8000-000000000001"}
add("github", "github valid", gh_body, gh_headers, [GH_SECRET], "accept")
add("github", "github rotation: second secret", gh_body, gh_headers, ["old-secret", GH_SECRET], "accept")
add("github", "github tampered body", gh_body.replace("main", "mainx", 1), gh_headers, [GH_SECRET], "reject", "signature_mismatch")
add("github", "github re-serialised JSON", json.dumps(json.loads(gh_body)), gh_headers, [GH_SECRET], "reject", "signature_mismatch")
add("github", "github wrong secret", gh_body, gh_headers, ["not-the-secret"], "reject", "signature_mismatch")
add("github", "github missing header", gh_body, {"X-GitHub-Event": "push"}, [GH_SECRET], "reject", "missing_header")
add("github", "github garbled header", gh_body, dict(gh_headers, **{"X-Hub-Signature-256": "sha256=xyz"}), [GH_SECRET], "reject", "malformed_header")
add("github", "github sha1 header only", gh_body, {"X-Hub-Signature": "sha1=" + hmac.new(GH_SECRET.encode(), gh_body.encode(), hashlib.sha1).hexdigest()}, [GH_SECRET], "reject", "missing_header")

# Shopify: documented base64 HMAC-SHA256 over the raw body.
SH_SECRET = "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"
sh_body = json.dumps({"id": 5678901234567, "email": "jenny.rosen@example.com", "total_price": "42.00",
                      "line_items": [{"title": "Butter croissant", "quantity": 10}]}, indent=2)
sh_sig = base64.b64encode(hmac.new(SH_SECRET.encode(), sh_body.encode(), hashlib.sha256).digest()).decode()
sh_headers = {"X-Shopify-Hmac-Sha256": sh_sig, "X-Shopify-Topic": "orders/create",
              "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "Content-Type": "application/json"}
add("shopify", "shopify valid", sh_body, sh_headers, [SH_SECRET], "accept")
add("shopify", "shopify rotation: second secret", sh_body, sh_headers, ["shpss_old", SH_SECRET], "accept")
add("shopify", "shopify tampered body", sh_body.replace("42.00", "42.01"), sh_headers, [SH_SECRET], "reject", "signature_mismatch")
add("shopify", "shopify re-serialised JSON", json.dumps(json.loads(sh_body)), sh_headers, [SH_SECRET], "reject", "signature_mismatch")
add("shopify", "shopify wrong secret", sh_body, sh_headers, ["shpss_wrong"], "reject", "signature_mismatch")
add("shopify", "shopify missing header", sh_body, {"X-Shopify-Topic": "orders/create"}, [SH_SECRET], "reject", "missing_header")
add("shopify", "shopify garbled header", sh_body, dict(sh_headers, **{"X-Shopify-Hmac-Sha256": "!!not base64!!"}), [SH_SECRET], "reject", "malformed_header")

# Twilio: RequestValidator from the official library.
TW_TOKEN = "12345678901234567890123456789012"
validator = RequestValidator(TW_TOKEN)
tw_url = "https://hooks.example.com/hooks/twilio?tenant=rosen"
tw_params = {"AccountSid": "AC" + "0" * 32, "Body": "Is the bakery open on Sunday? 🥐 & more", "From": "+14155550199",
             "MessageSid": "SM" + "a" * 32, "SmsStatus": "received", "To": "+14155550100", "NumMedia": "0"}
tw_body = urllib.parse.urlencode(tw_params)
tw_sig = validator.compute_signature(tw_url, tw_params)
assert validator.validate(tw_url, tw_params, tw_sig)
tw_headers = {"X-Twilio-Signature": tw_sig, "Content-Type": "application/x-www-form-urlencoded",
              "I-Twilio-Idempotency-Token": "6f1c2b3a-0000-4000-8000-000000000009"}
add("twilio", "twilio form valid", tw_body, tw_headers, [TW_TOKEN], "accept", url=tw_url, library=True)
add("twilio", "twilio form valid, URL with default port", tw_body, tw_headers, [TW_TOKEN], "accept",
    url="https://hooks.example.com:443/hooks/twilio?tenant=rosen", library=validator.validate("https://hooks.example.com:443/hooks/twilio?tenant=rosen", tw_params, tw_sig))
add("twilio", "twilio rotation: second token", tw_body, tw_headers, ["0" * 32, TW_TOKEN], "accept", url=tw_url, library=True)
tampered = dict(tw_params, Body="Is the bakery open on Monday? 🥐 & more")
add("twilio", "twilio tampered param", urllib.parse.urlencode(tampered), tw_headers, [TW_TOKEN], "reject", "signature_mismatch",
    url=tw_url, library=validator.validate(tw_url, tampered, tw_sig))
add("twilio", "twilio other URL", tw_body, tw_headers, [TW_TOKEN], "reject", "signature_mismatch",
    url="https://hooks.example.com/hooks/twilio?tenant=evil", library=validator.validate("https://hooks.example.com/hooks/twilio?tenant=evil", tw_params, tw_sig))
add("twilio", "twilio wrong token", tw_body, tw_headers, ["f" * 32], "reject", "signature_mismatch", url=tw_url,
    library=RequestValidator("f" * 32).validate(tw_url, tw_params, tw_sig))
add("twilio", "twilio missing header", tw_body, {"Content-Type": "application/x-www-form-urlencoded"}, [TW_TOKEN], "reject", "missing_header", url=tw_url, library=False)
add("twilio", "twilio garbled header", tw_body, dict(tw_headers, **{"X-Twilio-Signature": "%%%"}), [TW_TOKEN], "reject", "malformed_header", url=tw_url, library=False)
tw_json = json.dumps({"event": "message.delivered", "sid": "SM" + "b" * 32})
tw_json_url = "https://hooks.example.com/hooks/twilio?bodySHA256=" + validator.compute_hash(tw_json)
tw_json_sig = validator.compute_signature(tw_json_url, {})
add("twilio", "twilio JSON body valid", tw_json, {"X-Twilio-Signature": tw_json_sig, "Content-Type": "application/json"}, [TW_TOKEN],
    "accept", url=tw_json_url, library=validator.validate(tw_json_url, tw_json, tw_json_sig))
add("twilio", "twilio JSON body tampered", tw_json.replace("delivered", "failed"), {"X-Twilio-Signature": tw_json_sig, "Content-Type": "application/json"},
    [TW_TOKEN], "reject", "signature_mismatch", url=tw_json_url, library=validator.validate(tw_json_url, tw_json.replace("delivered", "failed"), tw_json_sig))

# Standard Webhooks v1 with the official library.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_OLD = "whsec_" + base64.b64encode(b"an older secret, rotated out").decode()
wh = standardwebhooks.Webhook(SW_SECRET)
sw_body = json.dumps({"type": "order.created", "data": {"order_id": "ord_42", "total": 4200}})
def sw_headers(msg_id, ts, body=sw_body, secret=SW_SECRET):
    sig = standardwebhooks.Webhook(secret).sign(msg_id, datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig, "Content-Type": "application/json"}
def sw_library(body, headers, secret=SW_SECRET):
    try:
        standardwebhooks.Webhook(secret).verify(body, headers)
        return True
    except Exception:
        return False
valid = sw_headers("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now - 5)
add("standard", "standard v1 valid", sw_body, valid, [SW_SECRET], "accept", library=sw_library(sw_body, valid))
both = dict(valid, **{"webhook-signature": sw_headers("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now - 5, secret=SW_OLD)["webhook-signature"] + " " + valid["webhook-signature"]})
add("standard", "standard v1 rotation: two signatures, new secret", sw_body, both, [SW_SECRET], "accept", library=sw_library(sw_body, both))
add("standard", "standard v1 rotation: two signatures, old secret", sw_body, both, [SW_OLD], "accept", library=sw_library(sw_body, both, SW_OLD))
add("standard", "standard v1 tampered body", sw_body.replace("4200", "4201"), valid, [SW_SECRET], "reject", "signature_mismatch", library=sw_library(sw_body.replace("4200", "4201"), valid))
add("standard", "standard v1 re-serialised JSON", json.dumps(json.loads(sw_body), separators=(",", ":")), valid, [SW_SECRET], "reject", "signature_mismatch")
add("standard", "standard v1 wrong secret", sw_body, valid, [SW_OLD], "reject", "signature_mismatch", library=sw_library(sw_body, valid, SW_OLD))
other_id = dict(valid, **{"webhook-id": "msg_other"})
add("standard", "standard v1 id changed", sw_body, other_id, [SW_SECRET], "reject", "signature_mismatch", library=sw_library(sw_body, other_id))
stale = sw_headers("msg_stale", now - 400)
add("standard", "standard v1 stale timestamp", sw_body, stale, [SW_SECRET], "reject", "timestamp_too_old", library=sw_library(sw_body, stale))
future = sw_headers("msg_future", now + 400)
add("standard", "standard v1 future timestamp", sw_body, future, [SW_SECRET], "reject", "timestamp_in_future", library=sw_library(sw_body, future))
add("standard", "standard missing signature header", sw_body, {k: v for k, v in valid.items() if k != "webhook-signature"}, [SW_SECRET], "reject", "missing_header", library=False)
add("standard", "standard garbled signature header", sw_body, dict(valid, **{"webhook-signature": "v1"}), [SW_SECRET], "reject", "malformed_header", library=False)
add("standard", "standard timestamp not a number", sw_body, dict(valid, **{"webhook-timestamp": "soon"}), [SW_SECRET], "reject", "malformed_header", library=False)
svix = {"svix-id": valid["webhook-id"], "svix-timestamp": valid["webhook-timestamp"], "svix-signature": valid["webhook-signature"]}
# Svix names are a Doorbell extension (the standardwebhooks library reads only webhook-*).
add("standard", "standard v1 with svix-* header names", sw_body, svix, [SW_SECRET], "accept", library=None)

# Standard Webhooks v1a: Ed25519 per the spec, with the cryptography package.
seed = bytes(range(32))
private = Ed25519PrivateKey.from_private_bytes(seed)
public_raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
WHPK = "whpk_" + base64.b64encode(public_raw).decode()
WHSK = "whsk_" + base64.b64encode(seed).decode()
def v1a_headers(msg_id, ts, body=sw_body, key=private):
    sig = base64.b64encode(key.sign(f"{msg_id}.{ts}.{body}".encode())).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": "v1a," + sig}
v1a = v1a_headers("msg_v1a", now - 5)
add("standard", "standard v1a valid (public key)", sw_body, v1a, [WHPK], "accept", library=True)
add("standard", "standard v1a beside a v1 of another secret", sw_body, dict(v1a, **{"webhook-signature": valid["webhook-signature"] + " " + v1a["webhook-signature"]}), [WHPK], "accept", library=True)
add("standard", "standard v1a tampered body", sw_body + " ", v1a, [WHPK], "reject", "signature_mismatch", library=False)
other_key = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
add("standard", "standard v1a other key", sw_body, v1a_headers("msg_v1a", now - 5, key=other_key), [WHPK], "reject", "signature_mismatch", library=False)
add("standard", "standard v1a stale", sw_body, v1a_headers("msg_v1a_old", now - 400), [WHPK], "reject", "timestamp_too_old", library=False)

# Generic HMAC with a signed timestamp: "{timestamp}.{body}".
HM_SECRET = "form-secret"
hm_body = json.dumps({"submission_id": "sub_1", "email": "a@example.com"})
settings = {"header": "X-Signature", "algorithm": "sha512", "encoding": "base64", "prefix": "", "timestamp_header": "X-Timestamp"}
def hm_headers(ts, body=hm_body):
    mac = hmac.new(HM_SECRET.encode(), f"{ts}.{body}".encode(), hashlib.sha512).digest()
    return {"X-Signature": base64.b64encode(mac).decode(), "X-Timestamp": str(ts)}
add("hmac", "hmac sha512/base64 with timestamp valid", hm_body, hm_headers(now - 5), [HM_SECRET], "accept", hmac_settings=settings, library=True)
add("hmac", "hmac timestamp changed", hm_body, dict(hm_headers(now - 5), **{"X-Timestamp": str(now - 4)}), [HM_SECRET], "reject", "signature_mismatch", hmac_settings=settings, library=False)
add("hmac", "hmac stale timestamp", hm_body, hm_headers(now - 400), [HM_SECRET], "reject", "timestamp_too_old", hmac_settings=settings, library=False)
add("hmac", "hmac missing timestamp", hm_body, {"X-Signature": hm_headers(now)["X-Signature"]}, [HM_SECRET], "reject", "missing_header", hmac_settings=settings, library=False)
sha1 = {"header": "X-Hook-Signature", "algorithm": "sha1", "encoding": "hex", "prefix": "sha1="}
add("hmac", "hmac sha1/hex with prefix valid", hm_body, {"X-Hook-Signature": "sha1=" + hmac.new(HM_SECRET.encode(), hm_body.encode(), hashlib.sha1).hexdigest()}, [HM_SECRET], "accept", hmac_settings=sha1, library=True)

print(json.dumps({"keys": {"standard_public": WHPK, "standard_secret_key": WHSK, "standard_v1": SW_SECRET},
                  "vectors": vectors}, indent=2, ensure_ascii=False))
