//! The kTLS probe asks the running kernel, over a loopback connection,
//! whether the `tls` ULP exists. Where it does not (this machine), the
//! session mode must stay userspace rustls and the reason must say why.

use ethergate_server::ktls::{KtlsSupport, probe};

#[test]
fn probe_reports_the_kernels_answer() {
    match probe() {
        KtlsSupport::Available => {
            // Offload is not wired yet: even with the ULP, sessions run in
            // userspace, and the mode says so honestly.
            assert_eq!(KtlsSupport::Available.session_mode(), "rustls-userspace");
        }
        KtlsSupport::Unavailable(reason) => {
            eprintln!("skipping kTLS offload checks: {reason}");
            assert!(
                reason.contains("TCP_ULP"),
                "reason names the failed step: {reason}"
            );
        }
    }
}
