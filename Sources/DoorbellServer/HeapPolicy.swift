#if canImport(Glibc)
import Glibc
#endif

/// Makes memory used for large request bodies go back to the system when the request is done.
/// glibc serves a large block (≥ 128 KiB) with its own mapping, returned on free, but after the
/// first such block is freed it raises that threshold to the block's size (up to 32 MiB), so from
/// then on multi-MiB bodies come from the heap and stay with the process: 100 clients sending
/// 4 MiB bodies left it at 317 MB instead of 48 MB. A fixed threshold keeps large blocks mapped
/// (95 MB after the same load). Other C libraries keep their own policy.
enum HeapPolicy {
    /// glibc's `M_MMAP_THRESHOLD` (malloc.h, which Swift's Glibc module does not expose).
    private static let mmapThreshold: Int32 = -3

    static func returnLargeBlocks() {
        #if canImport(Glibc)
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        // RTLD_DEFAULT (a null handle): the process's own malloc.
        guard let symbol = dlsym(nil, "mallopt") else { return }
        _ = unsafeBitCast(symbol, to: Mallopt.self)(mmapThreshold, 128 * 1024)
        #endif
    }
}
