import CFerryVersion

/// The running build, as scripts/build-ferry stamped it.
public enum FerryBuild {
    /// `0.1.0+abc1234` (`-dirty`: built with uncommitted changes; `unstamped`: not built by the script).
    public static let version = String(cString: ferry_build_version())
}
