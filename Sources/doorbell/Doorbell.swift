import ArgumentParser
import DoorbellCLI

/// The `doorbell` executable: everything lives in DoorbellCLI.
@main
extension DoorbellCommand {}
