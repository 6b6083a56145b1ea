#!/usr/bin/env python3
"""Writes the benchmark's one signed request as a wrk Lua script: a Stripe event body with both
a Stripe-Signature header (for Doorbell's stripe source) and an X-Signature HMAC-SHA256 hex header
(for Doorbell's hmac source and adnanh/webhook's payload-hmac-sha256 rule)."""
import hashlib, hmac, json, sys, time

stripe_secret, hmac_secret, out = sys.argv[1], sys.argv[2], sys.argv[3]
body = json.dumps({
    "id": "evt_bench_0001", "object": "event", "type": "payment_intent.succeeded", "api_version": "2024-06-20",
    "created": int(time.time()), "livemode": False,
    "data": {"object": {"id": "pi_bench", "object": "payment_intent", "amount": 4200, "currency": "usd",
                        "customer": "cus_bench", "status": "succeeded", "metadata": {"order_id": "1042"}}},
}, indent=2)
t = int(time.time())
v1 = hmac.new(stripe_secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
plain = hmac.new(hmac_secret.encode(), body.encode(), hashlib.sha256).hexdigest()
with open(out, "w") as f:
    f.write('wrk.method = "POST"\n')
    f.write(f'wrk.body = {json.dumps(body)}\n')
    f.write('wrk.headers["Content-Type"] = "application/json"\n')
    f.write(f'wrk.headers["Stripe-Signature"] = "t={t},v1={v1}"\n')
    f.write(f'wrk.headers["X-Signature"] = "{plain}"\n')
    with open(sys.argv[0].replace("request.py", "report.lua")) as r:
        f.write(r.read())
