#!/usr/bin/env python3
"""Generates Stripe signature vectors with Stripe's official Python library (PyPI `stripe`).

Each vector records the library's own verdict; Doorbell's tests replay them through StripeScheme.
Run: python3 scripts/vectors/stripe_vectors.py > Tests/DoorbellTests/Fixtures/stripe-vectors.json
"""
import json
import time

import stripe
from stripe import WebhookSignature

SECRET = "whsec_doorbell_test_primary_5f1c2e"
OLD_SECRET = "whsec_doorbell_test_rotated_out_9a7b"
TOLERANCE = 300

BODY = json.dumps({
    "id": "evt_1PvTestVectorDoorbell01",
    "object": "event",
    "type": "payment_intent.succeeded",
    "created": 1764000000,
    "data": {"object": {"id": "pi_3PvTestVector", "amount": 4200, "currency": "usd",
                        "description": "Café au lait × 2", "metadata": {"order_id": "1042"}}},
}, indent=2, ensure_ascii=False)


def library_accepts(body, header, secret, tolerance):
    try:
        WebhookSignature.verify_header(body, header, secret, tolerance)
        return True
    except stripe.SignatureVerificationError:
        return False


def sig(body, secret, t):
    return WebhookSignature._compute_signature("%d.%s" % (t, body), secret)


def main():
    now = int(time.time())
    vectors = []

    def add(name, body, header, secrets, expect, reason=None, note=None, library=None):
        # `library` is the official library's verdict with the first secret and the real clock.
        if library is None:
            library = any(library_accepts(body, header, s, TOLERANCE) for s in secrets) if header else False
        vectors.append({"name": name, "body": body, "header": header, "secrets": secrets, "now": now,
                        "tolerance": TOLERANCE, "expect": expect, "reason": reason,
                        "library_accepts": library, "note": note})

    valid = WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=now - 5)
    add("valid", BODY, valid, [SECRET], "accept")
    add("valid, secret among several", BODY, valid, [OLD_SECRET, SECRET], "accept")
    tampered = BODY.replace("4200", "4201", 1)
    add("tampered body (one byte)", tampered, valid, [SECRET], "reject", "signature_mismatch")
    reserialised = json.dumps(json.loads(BODY), separators=(",", ":"), ensure_ascii=False)
    add("re-serialised JSON", reserialised, valid, [SECRET], "reject", "signature_mismatch")
    wrong = WebhookSignature.generate_signature_header(BODY, "whsec_someone_else", timestamp=now - 5)
    add("wrong secret", BODY, wrong, [SECRET], "reject", "signature_mismatch")
    rotation = "t=%d,v1=%s,v1=%s" % (now - 5, sig(BODY, OLD_SECRET, now - 5), sig(BODY, SECRET, now - 5))
    add("two v1 during rotation, new secret configured", BODY, rotation, [SECRET], "accept")
    add("two v1 during rotation, old secret configured", BODY, rotation, [OLD_SECRET], "accept")
    v0 = "t=%d,v0=%s" % (now - 5, sig(BODY, SECRET, now - 5))
    add("v0 only", BODY, v0, [SECRET], "reject", "malformed_header")
    v0_and_v1 = "t=%d,v0=%s,v1=%s" % (now - 5, "0" * 64, sig(BODY, SECRET, now - 5))
    add("v0 ignored beside a good v1", BODY, v0_and_v1, [SECRET], "accept")
    stale = WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=now - TOLERANCE - 60)
    add("stale timestamp", BODY, stale, [SECRET], "reject", "timestamp_too_old")
    future = WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=now + TOLERANCE + 60)
    add("future timestamp", BODY, future, [SECRET], "reject", "timestamp_in_future",
        note="the library checks only stale timestamps; Doorbell refuses both directions")
    edge = WebhookSignature.generate_signature_header(BODY, SECRET, timestamp=now - TOLERANCE + 2)
    add("timestamp just inside tolerance", BODY, edge, [SECRET], "accept")
    add("missing header", BODY, None, [SECRET], "reject", "missing_header")
    add("garbage header", BODY, "garbage", [SECRET], "reject", "malformed_header")
    add("timestamp not a number", BODY, "t=abc,v1=%s" % sig(BODY, SECRET, now), [SECRET], "reject", "malformed_header")
    add("v1 not hex", BODY, "t=%d,v1=zzzz" % now, [SECRET], "reject", "malformed_header")
    add("empty header", BODY, "", [SECRET], "reject", "malformed_header", library=False)
    print(json.dumps({"generator": "stripe %s WebhookSignature" % stripe.VERSION, "vectors": vectors},
                     indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
