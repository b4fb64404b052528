# Homebrew formula for peerspool (for a tap: brew install <tap>/peerspool).
# Builds from source with cargo; installs the man page and completions
# generated from the CLI definitions; `brew services start peerspool` runs
# the daemon as a LaunchAgent (macOS) or a systemd user unit (Linux).
# The url/homepage name the public repository; update tag and revision on
# each release.
class Peerspool < Formula
  desc "Keep a team of AI coding agents reachable through file spools and tmux"
  homepage "https://github.com/peerspool/peerspool"
  url "https://github.com/peerspool/peerspool.git",
      tag: "v0.1.0"
  license "MIT"
  head "https://github.com/peerspool/peerspool.git", branch: "main"

  depends_on "rust" => :build
  depends_on "tmux"

  def install
    system "cargo", "install", *std_cargo_args
    generate_completions_from_executable(bin/"peerspool", "generate", "completions")
    system bin/"peerspool", "generate", "man", "--out", buildpath/"man"
    man1.install Dir[buildpath/"man/*.1"]
  end

  def caveats
    <<~EOS
      Start the daemon now and at every login:
        brew services start peerspool
      Its own logs (delivery.log, lifecycle.log) are in
        ~/.local/state/peerspool/log/ (or $PEERSPOOL_HOME/log/)
      Add peers with `peerspool peer add`; see `man peerspool`.
    EOS
  end

  service do
    run [opt_bin/"peerspool", "daemon"]
    # Restart after a crash or an error exit; `brew services stop` (SIGTERM,
    # exit 0) stays stopped.
    keep_alive successful_exit: false
    # Services get a minimal PATH: find Homebrew's tmux and the agents.
    environment_variables PATH: std_service_path_env
    log_path var/"log/peerspool.log"
    error_log_path var/"log/peerspool.log"
  end

  test do
    assert_match version.to_s, shell_output("#{bin}/peerspool --version")
    (testpath/"task.json").write '{"text":"hello"}'
    assert_match "ok", shell_output("#{bin}/peerspool spool check #{testpath}/task.json")
    ENV["PEERSPOOL_HOME"] = (testpath/"root").to_s
    system bin/"peerspool", "peer", "add", "sh1", "--runtime", "command", "--cwd", testpath, "--", "sh"
    assert_match "sh1", shell_output("#{bin}/peerspool peer list")
  end
end
