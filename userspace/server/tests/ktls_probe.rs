//! The kTLS probe asks the running kernel, over a loopback connection,
//! whether the `tls` ULP exists. Where it does not (this machine), the
//! session mode must stay userspace rustls and the reason must say why.

use ethergate_server::ktls::{self, KtlsSupport, probe};

#[test]
fn probe_reports_the_kernels_answer() {
    match probe() {
        KtlsSupport::Available => {
            assert_eq!(KtlsSupport::Available.session_mode(), ktls::MODE_KERNEL);
        }
        KtlsSupport::Unavailable(reason) => {
            eprintln!("skipping kTLS offload checks: {reason}");
            assert!(
                reason.contains("TCP_ULP"),
                "reason names the failed step: {reason}"
            );
            assert_eq!(
                KtlsSupport::Unavailable(reason).session_mode(),
                ktls::MODE_USERSPACE
            );
        }
    }
    // Detected once: a second call gives the same answer without asking.
    assert_eq!(probe(), probe());
}
