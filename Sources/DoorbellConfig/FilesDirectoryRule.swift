import DoorbellCore
import Foundation

/// `files_dir` is where webhook data chooses file names (`file` step outputs, `email.attach`), so it
/// must never hold what an attacker would most like to read or overwrite: the database (every event,
/// every endpoint secret) and the config file. Compared by real paths, so a link cannot hide either.
enum FilesDirectoryRule {
    /// Below the config's folder, beside (not around) `doorbell.db` and `doorbell.yml`.
    static let defaultFolder = "files"

    static func check(_ configuration: Configuration, configFile: String, _ reader: NodeReader) {
        let folder = configuration.filesDirectory
        var guarded = [("the config file", configFile)]
        if case .sqlite(let database) = configuration.storage { guarded.insert(("the database", database), at: 0) }
        for (what, file) in guarded where holds(folder, file) {
            reader.error(
                "files_dir", "'\(folder)' holds \(what) \(file); webhook data picks the names of files written and attached there, so use a folder of its own (the default is \(defaultFolder)/ beside the config)"
            )
        }
    }

    /// Whether `file` lies in `folder` or below it, by the paths as written or as resolved.
    static func holds(_ folder: String, _ file: String) -> Bool {
        let pairs = [(RealPath.standardized(folder), RealPath.standardized(file)), (RealPath.of(folder), RealPath.of(file))]
        return pairs.contains { folder, file in folder == "/" || file == folder || file.hasPrefix(folder + "/") }
    }
}
