#!/usr/bin/env python3
"""Seeds a Doorbell SQLite database (already migrated by `doorbell serve`, which is stopped) with
EVENTS stored events, written straight into the real tables in one transaction, so a million rows
take seconds rather than the hours ingest would. Used by scripts/bench.d/dashboard.sh.

What goes in (fixed random seed, so every run seeds the same rows):
  * events over the last 7 days, in arrival order (seq, ids sorting by time as EventID makes them):
    stripe 50 % (payment_intent.succeeded, invoice.paid, customer.created, charge.refunded),
    shop 30 % (orders/create, orders/paid, products/update), contact-form 15 % (form.submitted),
    api 5 % (order.paid, order.shipped); JSON bodies of about 1 KB naming one of 300 customers.
  * runs for the automations of the bench config (invoice-on-payment on stripe
    payment_intent.succeeded, crm-on-form on contact-form form.submitted), two steps each;
    deliveries to endpoint erp (api events and stripe invoice.paid) with 1-3 attempts each.
    Statuses: mostly succeeded, 2 % dead, 1 % waiting_retry, 0.5 % pending, 0.5 % paused
    (deliveries); waiting or pending ones are due in 2100, so the worker never picks them up.
  * one "showcase" event (a payment in the middle of the range) with a run and two deliveries,
    one of them dead after 5 attempts: the timeline measured.
  * search texts: RARE appears in exactly 25 bodies spread over the range, ABSENT in none,
    COMMON is one of the 300 customers (in about 1 of 300 bodies).
Prints a JSON object with the ids and texts the measurement uses, and the seeding time.
Usage: seed_events.py DATABASE EVENTS
"""
import json
import random
import sqlite3
import sys
import time

DATABASE, EVENTS = sys.argv[1], int(sys.argv[2])
started = time.time()
rng = random.Random(12)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PAIRS = [a + b for a in ALPHABET for b in ALPHABET]  # 10 bits at a time


def event_id(prefix, millis):
    """`prefix` + 26 Crockford base32 characters: 48-bit time then 80 random bits (as EventID)."""
    value = (millis << 80) | rng.getrandbits(80)
    return prefix + "".join([PAIRS[(value >> shift) & 1023] for shift in range(120, -10, -10)])


def token(length):
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(length))


CUSTOMERS = [("cus_" + token(14), name) for name in
             (f"{first} {last}" for first in ("Anna", "Ben", "Clara", "David", "Eva", "Felix", "Greta", "Hans", "Ida", "Jonas",
                                              "Karla", "Lukas", "Mia", "Noah", "Olga")
              for last in ("Rosen", "Becker", "Schmidt", "Weber", "Wagner", "Koch", "Bauer", "Richter", "Klein", "Wolf",
                           "Neumann", "Schwarz", "Zimmer", "Braun", "Krause", "Hofmann", "Hartmann", "Lange", "Werner", "Krueger"))]
CITIES = ["Berlin", "Hamburg", "Muenchen", "Koeln", "Frankfurt", "Stuttgart", "Leipzig", "Dresden", "Bremen", "Hannover"]
RARE = "cus_RareCustomer7Q"
ABSENT = "cus_NoSuchCustomer"
COMMON = CUSTOMERS[42][0]
LOREM = ("Please deliver to the side entrance; ring twice. Fresh sourdough, two rye loaves, a dozen butter "
         "croissants and the seasonal plum cake, sliced. Invoice to the company address on file.")

STRIPE = ('{"id":"%(pid)s","object":"event","api_version":"2024-06-20","created":%(created)d,"type":"%(type)s",'
          '"livemode":true,"pending_webhooks":1,"data":{"object":{"id":"pi_%(n)d","object":"payment_intent",'
          '"amount":%(amount)d,"currency":"eur","customer":"%(customer)s","description":"Order %(order)d from the web shop",'
          '"receipt_email":"%(email)s","status":"succeeded","payment_method_types":["card"],"latest_charge":"ch_%(n)d",'
          '"charges":{"object":"list","data":[{"id":"ch_%(n)d","amount":%(amount)d,"paid":true,"billing_details":'
          '{"address":{"city":"%(city)s","country":"DE","line1":"Hauptstrasse %(street)d","postal_code":"%(zip)05d"},'
          '"email":"%(email)s","name":"%(name)s"},"outcome":{"network_status":"approved_by_network","risk_level":"normal",'
          '"seller_message":"Payment complete.","type":"authorized"}}]},"metadata":{"order_id":"%(order)d","channel":"web",'
          '"note":"%(note)s"}}},"request":{"id":"req_%(n)d","idempotency_key":"%(n)d-%(order)d"}}')
SHOP = ('{"id":%(n)d,"admin_graphql_api_id":"gid://shopify/Order/%(n)d","topic":"%(type)s","created_at":%(created)d,'
        '"currency":"EUR","total_price":"%(price)s","subtotal_price":"%(price)s","financial_status":"paid",'
        '"customer":{"id":"%(customer)s","email":"%(email)s","first_name":"%(name)s","orders_count":%(street)d},'
        '"shipping_address":{"name":"%(name)s","address1":"Hauptstrasse %(street)d","city":"%(city)s","zip":"%(zip)05d",'
        '"country_code":"DE"},"line_items":[{"id":%(order)d1,"title":"Sourdough loaf","quantity":2,"price":"4.80","sku":"BRD-01"},'
        '{"id":%(order)d2,"title":"Butter croissant","quantity":12,"price":"1.40","sku":"PST-07"},{"id":%(order)d3,'
        '"title":"Plum cake","quantity":1,"price":"18.50","sku":"CKE-03"}],"note":"%(note)s","order_number":%(order)d}')
FORM = ('{"submission_id":"sub_%(n)d","type":"form.submitted","submitted_at":%(created)d,"form":"catering-enquiry",'
        '"fields":{"name":"%(name)s","email":"%(email)s","customer":"%(customer)s","company":"%(city)s Events GmbH",'
        '"phone":"+49 30 %(zip)05d%(street)d","guests":%(street)d,"date":"2027-01-%(day)02d","message":"%(note)s %(note)s"},'
        '"meta":{"ip":"203.0.113.%(street)d","user_agent":"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",'
        '"referrer":"https://rosen-bakery.example/catering","consent":true}}')
API = ('{"type":"%(type)s","data":{"order":"A-%(order)d","customer":"%(customer)s","email":"%(email)s","amount":%(amount)d,'
       '"currency":"EUR","items":[{"sku":"BRD-01","quantity":2},{"sku":"PST-07","quantity":12},{"sku":"CKE-03","quantity":1}],'
       '"address":{"name":"%(name)s","line1":"Hauptstrasse %(street)d","city":"%(city)s","zip":"%(zip)05d","country":"DE"},'
       '"note":"%(note)s","channel":"pos","till":"till-%(day)d","cashier":"%(name)s"}}')

# (source, type, template, share of events)
KINDS = [
    ("stripe", "payment_intent.succeeded", STRIPE, 0.24), ("stripe", "invoice.paid", STRIPE, 0.12),
    ("stripe", "customer.created", STRIPE, 0.08), ("stripe", "charge.refunded", STRIPE, 0.06),
    ("shop", "orders/create", SHOP, 0.15), ("shop", "orders/paid", SHOP, 0.10), ("shop", "products/update", SHOP, 0.05),
    ("contact-form", "form.submitted", FORM, 0.15),
    ("api", "order.paid", API, 0.03), ("api", "order.shipped", API, 0.02),
]
HEADERS = {
    "stripe": "Content-Type: application/json; charset=utf-8\nStripe-Signature: t=%d,v1=%064x\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "shop": "Content-Type: application/json\nX-Shopify-Hmac-Sha256: %d%064x\nX-Shopify-Topic: orders/create\nX-Shopify-Shop-Domain: rosen-bakery.myshopify.com",
    "contact-form": "Content-Type: application/json\nX-Signature: sha256=%d%064x",
    "api": "Content-Type: application/json\nX-Seed: %d%064x",
}
STEPS = {"invoice-on-payment": ["invoice", "mark-paid"], "crm-on-form": ["crm", "alert"]}
AUTOMATION = {("stripe", "payment_intent.succeeded"): "invoice-on-payment", ("contact-form", "form.submitted"): "crm-on-form"}
DELIVERED = {("api", "order.paid"), ("api", "order.shipped"), ("stripe", "invoice.paid")}
FAR = 4102444800000  # 2100-01-01: waiting runs never come due during the benchmark
ERRORS = ["HTTP 503 from 127.0.0.1:9 (Service Unavailable)", "connection refused (127.0.0.1:9)", "timed out after 30 s"]

cumulative, total = [], 0.0
for kind in KINDS:
    total += kind[3]
    cumulative.append(total)


def pick_kind():
    x = rng.random() * total
    for index, edge in enumerate(cumulative):
        if x < edge:
            return KINDS[index]
    return KINDS[-1]


def pick_status(delivery):
    x = rng.random()
    if x < 0.02:
        return "dead"
    if x < 0.03:
        return "waiting_retry"
    if x < 0.035:
        return "pending"
    if delivery and x < 0.04:
        return "paused"
    return "succeeded"


now_ms = int(time.time() * 1000) - 60_000
span = 7 * 86400 * 1000
first_ms = now_ms - span
rare_every = max(1, EVENTS // 25)
showcase_at = EVENTS // 2

events, runs, steps, attempts = [], [], [], []
run_seq = 0
showcase = None
provider_counter = {}
for n in range(EVENTS):
    received = first_ms + (span * n) // max(1, EVENTS)
    source, kind_type, template, _ = pick_kind()
    if n == showcase_at:
        source, kind_type, template = "stripe", "payment_intent.succeeded", STRIPE
    customer, name = rng.choice(CUSTOMERS)
    if n % rare_every == rare_every // 2 and n // rare_every < 25:
        customer = RARE
    values = {"pid": "", "created": received // 1000, "type": kind_type, "n": 100000 + n, "amount": rng.randrange(250, 25000),
              "customer": customer, "order": 1000 + n, "email": name.lower().replace(" ", ".") + "@example.com",
              "city": rng.choice(CITIES), "street": rng.randrange(1, 200), "zip": rng.randrange(1000, 99999), "name": name,
              "note": LOREM[: rng.randrange(60, len(LOREM))], "price": "%d.%02d" % (rng.randrange(5, 200), rng.randrange(100)),
              "day": rng.randrange(1, 29)}
    eid = event_id("evt_", received)
    provider_id = None
    if source == "stripe":
        provider_id = "evt_1" + token(6) + "%08d" % n
        values["pid"] = provider_id
    elif source == "shop":
        provider_id = "%08d-%s" % (n, token(8))
    elif source == "contact-form":
        provider_id = "sub_%d" % (100000 + n)
    body = (template % values).encode()
    headers = HEADERS[source] % (received // 1000, rng.getrandbits(256))
    events.append((n + 1, eid, source, kind_type, provider_id, received, headers, body, 0))

    automation = AUTOMATION.get((source, kind_type))
    if automation:
        status = "succeeded" if n == showcase_at else pick_status(False)
        run_seq += 1
        rid = event_id("run_", received + 3)
        done = len(STEPS[automation]) if status == "succeeded" else (1 if status == "dead" else 0)
        error = rng.choice(ERRORS) if status in ("dead", "waiting_retry") else None
        due = FAR if status in ("pending", "waiting_retry") else received + 3
        runs.append((rid, eid, automation, status, done, 5 if status == "dead" else (1 if error else 0), due, error,
                     received + 3, received + 900, None, 1, None, run_seq))
        for position, step in enumerate(STEPS[automation][:done]):
            steps.append((rid, step, position, '{"status":200,"body":{"ok":true,"id":"%s-%d"}}' % (step, n), received + 200 + 300 * position))
    deliveries = []
    if (source, kind_type) in DELIVERED or n == showcase_at:
        deliveries.append(("erp", "succeeded" if n == showcase_at else pick_status(True)))
    if n == showcase_at:
        deliveries.append(("crm-hook", "dead"))
        showcase = eid
    for endpoint, status in deliveries:
        run_seq += 1
        rid = event_id("dlv_", received + 5)
        if n == showcase_at:
            tries = 3 if status == "succeeded" else 5
        else:
            tries = {"succeeded": 1 + (rng.random() < 0.1) + (rng.random() < 0.02), "dead": 5, "waiting_retry": 2}.get(status, 0)
        error = "HTTP 500 from %s" % endpoint if status in ("dead", "waiting_retry") else None
        due = FAR if status in ("pending", "waiting_retry", "paused") else received + 5
        runs.append((rid, eid, "endpoint:" + endpoint, status, 1 if status == "succeeded" else 0, tries, due, error,
                     received + 5, received + 5 + 60_000 * tries, None, 1, endpoint, run_seq))
        for number in range(1, tries + 1):
            last_ok = status == "succeeded" and number == tries
            attempts.append((rid, number, endpoint, received + 5 + 60_000 * (number - 1), 200 if last_ok else (None if number % 3 == 2 else 500),
                             rng.randrange(20, 400), '{"received":true}' if last_ok else ("" if number % 3 == 2 else '{"error":"upstream unavailable"}'),
                             None if last_ok else ("timed out after 30 s" if number % 3 == 2 else "HTTP 500")))

generated = time.time()
db = sqlite3.connect(DATABASE, isolation_level=None)
# One big transaction without a journal: the file is thrown away if seeding fails. WAL again after.
db.execute("PRAGMA journal_mode = OFF")
db.execute("PRAGMA synchronous = OFF")
db.execute("PRAGMA cache_size = -1000000")
db.execute("BEGIN")
db.executemany("INSERT INTO events (seq, id, source, type, provider_id, received_at, headers, body, depth) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
db.executemany("""INSERT INTO runs (id, event_id, automation, status, next_step, attempt, due_at, last_error, created_at, updated_at,
                                    concurrency_key, concurrency_limit, endpoint, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""", runs)
db.executemany("INSERT INTO step_results (run_id, step_id, position, output, completed_at) VALUES (?, ?, ?, ?, ?)", steps)
db.executemany("INSERT INTO attempts (run_id, number, endpoint, started_at, status, latency_ms, response, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", attempts)
db.execute("COMMIT")
# No ANALYZE: doorbell never runs it, so the planner sees what it sees in production.
db.execute("PRAGMA journal_mode = WAL")
db.close()

sizes = sum(len(e[7]) for e in events)
print(json.dumps({
    "events": EVENTS, "runs": sum(1 for r in runs if r[12] is None), "deliveries": sum(1 for r in runs if r[12] is not None),
    "step_results": len(steps), "attempts": len(attempts), "dead_runs": sum(1 for r in runs if r[3] == "dead"),
    "mean_body_bytes": round(sizes / max(1, EVENTS)), "showcase": showcase, "rare": RARE, "absent": ABSENT, "common": COMMON,
    "rare_count": sum(1 for e in events if RARE.encode() in e[7]),
    "generate_seconds": round(generated - started, 1), "insert_seconds": round(time.time() - generated, 1),
}))
