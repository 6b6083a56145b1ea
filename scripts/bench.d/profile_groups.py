#!/usr/bin/env python3
"""Sums a `perf report --no-children --sort dso,symbol --stdio` (demangled) by area of the ingest
path, so a profile reads as "where does a request's CPU go": HTTP server (NIO, Hummingbird, the
HTTP parser), JSON parsing, HMAC, logging/metrics, storage (SQLite, GRDB, group commit), allocation
and ARC, Doorbell's own code, the kernel's network and file work. The first matching rule wins; the
rules look at the library and the symbol's name.
Prints the areas with their share of the samples, then the top symbols with their area.
Usage: profile_groups.py SELF_TXT [TOP]
"""
import re
import sys

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 30

# (area, library pattern or None, symbol pattern or None); both given must match.
RULES = [
    # Reabstraction thunks of the group commit observer's (Int, Duration) handler: a chain that
    # grew by two thunks per commit (CommitObserver in GroupCommit.swift) showed up here.
    ("metrics: group-commit observer thunks", None, r"\(@(unowned|in_guaranteed) Int, @(unowned|in_guaranteed) Duration\)"),
    ("allocation / ARC / runtime", r"libswiftCore|libc|ld-linux", r"^swift_|^_swift_|swift::|malloc|^free|_int_|cfree|tcache|__tls_get_addr|getCache|tryCast|^swift_bridgeObject"),
    ("kernel: network (loopback TCP, epoll)", r"kernel", r"tcp|ip_|ipv4|skb|sock|net_|netif|napi|__dev_|loopback|epoll|ep_|inet|__sys_(send|recv)|sendmsg|recvmsg|dst_|nf_|__napi|process_backlog|validate_xmit"),
    ("kernel: files and fsync (WAL writes)", r"kernel", r"ext4|jbd2|blk|bio|nvme|virtio|fsync|filemap|folio|page_cache|iomap|submit|writeback|vfs_write|generic_perform_write|copy_page|mpage|xfs|btrfs|fdatasync|file_write|pwrite"),
    ("kernel: scheduling, futex, syscalls", r"kernel", r"sched|futex|switch|wake|schedule|idle|syscall|entry_|irq|softirq|finish_task|pick_|enqueue|dequeue|update_|psi_|rcu|hrtimer|timer|clock|ktime|select_task|ttwu|try_to_wake|native_|raw_spin|_raw_|mutex|restore|exit_to_user|ret_from"),
    ("kernel: other", r"kernel", None),
    ("storage: SQLite", r"sqlite", None),
    ("storage: SQLite", None, r"^sqlite3|^pcache|^btree|^pager|^wal|^vdbe|^sqlite"),
    ("storage: GRDB, group commit, store", None, r"GRDB|GroupCommit|SQLiteEventStore|StatementArguments|DatabaseValue|DatabasePool|SerializedDatabase|DatabaseQueue|HeaderCoding|CheckpointPacing|StoreMonitor|RecentEvents|cachedStatement"),
    ("HMAC verification (BoringSSL SHA-256)", r"(?i)crypto|boringssl", r"(?i)sha|hmac|HMAC|Digest|SymmetricKey|CRYPTO|OPENSSL|boringssl|memcmp|Crypto"),
    ("HMAC verification (BoringSSL SHA-256)", None, r"HMAC|SHA256|SymmetricKey|sha256_block|HMACScheme|ByteEncoding|CCryptoBoringSSL|constantTime|safeCompare"),
    ("JSON parsing (Foundation)", None, r"JSONSerialization|JSONParser|JSONScanner|JSONMap|__JSON|_JSON|NSNumber|NSDictionary|NSArray|NSString|_NSCF|CFString|CFNumber|JSONPointer|ParsedBody|EventIdentity|jsonObject|_bridgeAnything|_bridgeToObjectiveC|__SwiftValue|bridg"),
    ("logging / metrics", None, r"Logging|Logger|Metrics|Prometheus|HTTPMetricsMiddleware|IngestMetrics|ServerMetrics|Counter|Histogram|CoreMetrics|Timer\b"),
    ("HTTP server (NIO, Hummingbird, llhttp)", r"(?i)nio|hummingbird|llhttp", None),
    ("HTTP server (NIO, Hummingbird, llhttp)", None, r"NIO|Hummingbird|HTTPTypes|HTTPFields|HTTPField|HTTPRequest|HTTPResponse|llhttp|ByteBuffer|Channel|EventLoop|ServerBootstrap|Router|Trie|RequestContext|ResponseWriter|HTTP1|HTTPServer|ConnectionGuard|MaximumAvailableConnections|CircularBuffer|ServiceContext|Tracing"),
    ("allocation / ARC / runtime", r"libc|libswiftCore|ld-linux|libjemalloc|libstdc", r"malloc|free|_int_|calloc|realloc|cfree|swift_retain|swift_release|swift_allocObject|swift_deallocObject|swift_bridgeObject|swift_unknownObject|swift_dynamicCast|swift_getGenericMetadata|swift_conformsTo|swift_task|swift_job|swift_arrayInitWithCopy|swift_beginAccess|swift_endAccess|swift_once|objc_|_swift_|__tls|swift_weak|tcache|arena|sysmalloc|memalign|mmap|munmap|sbrk"),
    ("allocation / ARC / runtime", None, r"^swift_|swift::|_swift_|malloc|free$|_int_free|_int_malloc"),
    ("libc: memcpy, strings, hashing", r"libc", None),
    ("Swift stdlib (strings, arrays, dictionaries)", r"libswiftCore|libswift_", None),
    ("Swift concurrency runtime", r"libswift_Concurrency|libdispatch", None),
    ("Foundation (other)", r"(?i)foundation|CoreFoundation", None),
    ("Doorbell's own code", None, r"Doorbell|IngestController|EventPlanner|NewEvent|EventID|IngestReply|FormFields|ClientAddress|CIDR|Source\b"),
]

line = re.compile(r"^\s+([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$")
rows = []
for text in open(path, errors="replace"):
    m = line.match(text)
    if m:
        rows.append((float(m.group(1)), m.group(2), m.group(4).strip()))


def area(dso, symbol):
    for name, library, pattern in RULES:
        if library and not re.search(library, dso):
            continue
        if pattern and not re.search(pattern, symbol):
            continue
        if library is None and pattern is None:
            continue
        return name
    return "other (" + dso + ")"


totals = {}
for share, dso, symbol in rows:
    key = area(dso, symbol)
    totals[key] = totals.get(key, 0) + share
covered = sum(totals.values())
print(f"self time by area ({covered:.1f} % of samples in symbols at >= 0.05 %):")
for key, share in sorted(totals.items(), key=lambda kv: -kv[1]):
    print(f"  {share:6.1f} %  {key}")
print()
print(f"top {top} symbols by self time:")
for share, dso, symbol in rows[:top]:
    print(f"  {share:6.2f} %  {area(dso, symbol):<42} {dso:<28} {symbol[:150]}")
