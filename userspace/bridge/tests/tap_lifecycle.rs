//! The tap's life as the kernel sees it: created and configured in a
//! namespace (checked with `ip`), reconfigured idempotently, attached to
//! when it exists, gone when dropped, and refused with a clear error when
//! the name belongs to something that is not a multi-queue tap.

mod common;

use common::{HUB, TAP, hub_config, ip, ipv4_lines, topology};
use ethergate_bridge::{LinkConfig, MacAddr, Tap, TapError, TapOptions};

#[test]
fn create_configure_and_reconfigure_idempotently() {
    let topo = topology();
    let config = hub_config();
    let tap = topo
        .enter("nat", || {
            let tap = Tap::create(TAP, 2).expect("creating tap_00 with 2 queues");
            tap.configure(&config).expect("configuring tap_00");
            tap
        })
        .expect("entering nat");
    assert_eq!(tap.queues().len(), 2);
    assert_eq!(tap.name(), TAP);

    let show = ip(&topo, &["addr", "show", TAP]);
    let first = show.lines().next().expect("ip addr show prints the link");
    assert!(first.contains("UP"), "tap not up: {show}");
    assert!(first.contains("mtu 1500"), "wrong MTU: {show}");
    assert!(
        first.starts_with(&format!("{}: {TAP}:", tap.ifindex())),
        "ifindex {} not the device's: {show}",
        tap.ifindex()
    );
    let mac = MacAddr::local_from_seed(HUB.as_bytes()).to_string();
    assert!(
        show.contains(&format!("link/ether {mac}")),
        "MAC {mac} not set: {show}"
    );
    assert_eq!(
        ipv4_lines(&show),
        vec![format!(
            "inet 192.168.30.1/24 brd 192.168.30.255 scope global {TAP}"
        )],
        "{show}"
    );
    // The tun driver reports the queue count over netlink.
    let details = ip(&topo, &["-d", "link", "show", TAP]);
    assert!(
        details.contains("tap") && details.contains("multi_queue"),
        "{details}"
    );

    // Configure again, with a stray address of our own subnet, one of
    // another and the same address with another prefix on the link: after
    // reconfiguring, exactly the configured address is left.
    topo.enter("nat", || {
        tap.configure(&config).expect("reconfiguring as is")
    })
    .expect("entering nat");
    ip(&topo, &["addr", "add", "192.168.30.7/24", "dev", TAP]);
    ip(&topo, &["addr", "add", "10.9.9.9/8", "dev", TAP]);
    ip(&topo, &["addr", "add", "192.168.30.1/16", "dev", TAP]);
    topo.enter("nat", || {
        tap.configure(&config).expect("reconfiguring over strays")
    })
    .expect("entering nat");
    let show = ip(&topo, &["addr", "show", TAP]);
    assert_eq!(
        ipv4_lines(&show),
        vec![format!(
            "inet 192.168.30.1/24 brd 192.168.30.255 scope global {TAP}"
        )],
        "{show}"
    );

    // A changed config applies in place, on a live (up) tap.
    let changed = LinkConfig {
        mac: Some(MacAddr::local_from_seed("other-hub".as_bytes())),
        mtu: 1400,
        ipv4: Some("192.168.31.1/24".parse().expect("cidr")),
        up: true,
    };
    topo.enter("nat", || {
        tap.configure(&changed).expect("changing the config")
    })
    .expect("entering nat");
    let show = ip(&topo, &["addr", "show", TAP]);
    assert!(show.contains("mtu 1400"), "{show}");
    let other_mac = MacAddr::local_from_seed("other-hub".as_bytes()).to_string();
    assert!(show.contains(&format!("link/ether {other_mac}")), "{show}");
    assert_eq!(ipv4_lines(&show).len(), 1, "{show}");
    assert!(show.contains("inet 192.168.31.1/24"), "{show}");
}

#[test]
fn configure_by_name_and_bad_mtu_is_a_named_error() {
    let topo = topology();
    let (tap, err) = topo
        .enter("nat", || {
            let tap = Tap::create(TAP, 1).expect("creating tap_00");
            ethergate_bridge::configure(TAP, &hub_config()).expect("configuring by name");
            let too_big = LinkConfig {
                mtu: 1_000_000,
                ..LinkConfig::default()
            };
            let err = ethergate_bridge::configure(TAP, &too_big).expect_err("MTU 1000000");
            (tap, err)
        })
        .expect("entering nat");
    let text = err.to_string();
    eprintln!("{text}");
    assert!(text.contains(TAP) && text.contains("MTU 1000000"), "{text}");
    let missing = topo
        .enter("nat", || {
            ethergate_bridge::configure("nosuch0", &LinkConfig::default())
                .expect_err("no such link")
        })
        .expect("entering nat");
    assert!(missing.to_string().contains("nosuch0"), "{missing}");
    drop(tap);
}

#[test]
fn dropping_the_tap_removes_the_device() {
    let topo = topology();
    let tap = topo
        .enter("nat", || Tap::create(TAP, 2).expect("creating tap_00"))
        .expect("entering nat");
    assert!(topo.ip("nat", &["link", "show", TAP]).is_ok());
    drop(tap);
    let gone = topo.ip("nat", &["link", "show", TAP]);
    assert!(gone.is_err(), "tap_00 still there after drop: {gone:?}");

    // into_queues: the device lives while any queue does.
    let mut queues = topo
        .enter("nat", || {
            Tap::create(TAP, 2).expect("creating tap_00").into_queues()
        })
        .expect("entering nat");
    drop(queues.pop());
    assert!(
        topo.ip("nat", &["link", "show", TAP]).is_ok(),
        "gone with one queue left"
    );
    drop(queues);
    assert!(topo.ip("nat", &["link", "show", TAP]).is_err());
}

#[test]
fn persistent_option_and_attaching_to_an_existing_tap() {
    let topo = topology();
    let persistent = TapOptions {
        persistent: true,
        ..TapOptions::default()
    };
    let first = topo
        .enter("nat", || {
            Tap::create_with(TAP, 2, persistent).expect("persistent tap")
        })
        .expect("entering nat");
    // A second Tap on the same name attaches more queues to the same device.
    let second = topo
        .enter("nat", || Tap::create(TAP, 1).expect("attaching to tap_00"))
        .expect("entering nat");
    assert_eq!(first.ifindex(), second.ifindex());
    drop(second); // cleared persistence
    drop(first);
    assert!(
        topo.ip("nat", &["link", "show", TAP]).is_err(),
        "second create made it non-persistent"
    );

    let kept = topo
        .enter("nat", || {
            Tap::create_with(TAP, 1, persistent).expect("persistent tap")
        })
        .expect("entering nat");
    drop(kept);
    assert!(
        topo.ip("nat", &["link", "show", TAP]).is_ok(),
        "persistent tap vanished"
    );

    // A multi-queue tap made by someone else (here: iproute2) is attached
    // to, and configured like our own.
    ip(&topo, &["link", "del", TAP]);
    ip(
        &topo,
        &["tuntap", "add", "dev", TAP, "mode", "tap", "multi_queue"],
    );
    let adopted = topo
        .enter("nat", || {
            let tap = Tap::create(TAP, 2).expect("attaching to the iproute2 tap");
            tap.configure(&hub_config()).expect("configuring it");
            tap
        })
        .expect("entering nat");
    assert!(ip(&topo, &["addr", "show", TAP]).contains("inet 192.168.30.1/24"));
    drop(adopted);
    assert!(topo.ip("nat", &["link", "show", TAP]).is_err());
}

#[test]
fn a_non_tap_with_the_name_is_a_clear_error() {
    let topo = topology();
    for (kind, setup) in [
        (
            "veth",
            &[
                "link", "add", TAP, "type", "veth", "peer", "name", "tap_00p",
            ][..],
        ),
        (
            "single-queue tap",
            &["tuntap", "add", "dev", TAP, "mode", "tap"][..],
        ),
        (
            "tun",
            &["tuntap", "add", "dev", TAP, "mode", "tun", "multi_queue"][..],
        ),
    ] {
        ip(&topo, setup);
        let err = topo
            .enter("nat", || {
                Tap::create(TAP, 2).expect_err("a non-tap must be refused")
            })
            .expect("entering nat");
        let text = err.to_string();
        eprintln!("{kind}: {text}");
        assert!(matches!(err, TapError::NotATap { .. }), "{kind}: {err:?}");
        assert!(text.contains(TAP) && text.contains(kind), "{kind}: {text}");
        // The existing device is left alone.
        assert!(
            topo.ip("nat", &["link", "show", TAP]).is_ok(),
            "{kind} removed"
        );
        ip(&topo, &["link", "del", TAP]);
    }
}
