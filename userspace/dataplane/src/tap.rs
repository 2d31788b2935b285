//! The hub-tap tc programs: attaching them, and running them through
//! BPF_PROG_TEST_RUN.
//!
//! tc, not XDP, because a tap's XDP hook only sees what userspace writes
//! *and* only in the tun driver's own XDP path; tc ingress sees every frame
//! the hub writes and tc egress every frame the kernel sends to the hub,
//! with one program type for both directions and `bpf_redirect_neigh`
//! available for next hops that are not resolved yet.

use aya::{
    Ebpf,
    programs::{
        SchedClassifier,
        tc::{self, SchedClassifierLinkId, TcAttachType},
    },
};

use crate::{DataplaneError, program_mut};

/// The tc programs in the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcProgram {
    /// Frames VPN clients send (DNAT, SNAT toward the uplink).
    TapIngress,
    /// Frames the kernel sends to VPN clients (DNAT replies restored).
    TapEgress,
    /// The uplink's and inside interfaces' ingress path: all of NAT in tc
    /// mode, and what XDP hands over in XDP mode (same code as
    /// `TapIngress`).
    NatIngress,
    /// The uplink's egress guard: nothing leaves with a source in an
    /// SNAT'd subnet untranslated.
    UplinkEgress,
}

impl TcProgram {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::TapIngress => "tap_ingress",
            Self::TapEgress => "tap_egress",
            Self::NatIngress => "nat_ingress",
            Self::UplinkEgress => "uplink_egress",
        }
    }
}

pub(crate) struct TapAttachment {
    pub(crate) interface: String,
    // Owned so the attachment lives exactly as long as the Dataplane; the
    // links detach when the programs are dropped.
    #[allow(dead_code)]
    links: [SchedClassifierLinkId; 2],
}

/// Attaches one of the tc programs to `interface`.
pub(crate) fn attach_one(
    ebpf: &mut Ebpf,
    interface: &str,
    program: TcProgram,
    at: TcAttachType,
) -> Result<SchedClassifierLinkId, DataplaneError> {
    // TCX (Linux ≥ 6.6, what aya uses there) needs no qdisc; older kernels
    // need clsact, and "already exists" is fine.
    let _ = tc::qdisc_add_clsact(interface);
    let classifier: &mut SchedClassifier = program_mut(ebpf, program.name())?;
    classifier
        .attach(interface, at)
        .map_err(|source| DataplaneError::TcAttach {
            interface: interface.to_owned(),
            program: program.name(),
            source: Box::new(source),
        })
}

/// Detaches a link made by [`attach_one`] (undoing half an attachment).
pub(crate) fn detach_one(ebpf: &mut Ebpf, program: TcProgram, link: SchedClassifierLinkId) {
    if let Ok(classifier) = program_mut::<SchedClassifier>(ebpf, program.name()) {
        let _ = classifier.detach(link);
    }
}

pub(crate) fn attach(ebpf: &mut Ebpf, interface: &str) -> Result<TapAttachment, DataplaneError> {
    let ingress = attach_one(
        ebpf,
        interface,
        TcProgram::TapIngress,
        TcAttachType::Ingress,
    )?;
    let egress = match attach_one(ebpf, interface, TcProgram::TapEgress, TcAttachType::Egress) {
        Ok(link) => link,
        Err(e) => {
            detach_one(ebpf, TcProgram::TapIngress, ingress);
            return Err(e);
        }
    };
    Ok(TapAttachment {
        interface: interface.to_owned(),
        links: [ingress, egress],
    })
}
