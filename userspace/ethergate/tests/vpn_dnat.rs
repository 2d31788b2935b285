//! The recipe's DNAT with the real Debian SoftEther VPN Client and
//! `ethergate serve`: `[[nat.dnat]] 192.168.0.0/16 tcp 80 → 10.0.1.26:80`
//! is applied in tc on the hub's tap (`tap_00`), so a VPN client asking
//! the hub's own address for port 80 — where nothing listens in the
//! appliance — gets the private web server's page. No iptables or
//! nftables rule exists in the appliance's namespace.
//! Needs root; run with `--test-threads=1`.

use std::time::Duration;

mod common;
use common::{PAGE, recipe_config_with_nat, recipe_topology, start_serve, web_server};
use ethergate_softether::{SoftEtherClient, Udhcpc};

const SERVER: &str = "198.51.100.1:443";

/// The client's NIC `vpn0` and account `acc` for tsumura on hub mikalab;
/// returns the tap's name.
fn account(client: &SoftEtherClient<'_>) -> String {
    common::vpnclient_account(client, SERVER)
}

#[test]
fn vpn_client_reaches_the_private_web_server_through_the_recipe_dnat() {
    let topo = recipe_topology();
    let (state, config) = recipe_config_with_nat(&topo, "");
    let _web = web_server(&topo, &state);
    let mut serve = start_serve(&topo, &config);
    common::wait_for(
        &mut serve,
        "NAT attached to hub taps",
        Duration::from_secs(15),
    );

    let client = SoftEtherClient::start(&topo, "client").expect("vpnclient");
    let tap = account(&client);
    client.account_connect("acc").expect("AccountConnect");
    if let Err(e) = client.wait_connected("acc", Duration::from_secs(20)) {
        panic!(
            "vpnclient did not connect: {e}\nethergate log:\n{}",
            serve.log()
        );
    }
    let lease = Udhcpc::new(&tap)
        .static_routes(true)
        .run(&topo, "client")
        .unwrap_or_else(|e| panic!("no DHCP lease: {e}\nethergate log:\n{}", serve.log()));
    assert_eq!(lease.ip.octets()[..3], [192, 168, 30]);

    // Nothing listens on 192.168.30.1:80 in the appliance: only DNAT can
    // answer with the private server's page.
    let page = topo
        .run(
            "client",
            &["curl", "-sS", "--max-time", "10", "http://192.168.30.1/"],
        )
        .expect("curl");
    assert_eq!(
        page.stdout,
        PAGE,
        "curl through the tunnel and DNAT: {}\nethergate log:\n{}",
        page.stderr,
        serve.log()
    );
    let iptables = topo.exec("nat", &["iptables-save"]).expect("iptables-save");
    assert!(
        iptables
            .stdout
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "iptables rules in nat: {}",
        iptables.stdout
    );
    let nft = topo.exec("nat", &["nft", "list", "ruleset"]).expect("nft");
    assert!(
        nft.stdout.trim().is_empty(),
        "nft ruleset in nat: {}",
        nft.stdout
    );
    let _ = std::fs::remove_dir_all(&state);
}

/// A VPN client's connection through a DNAT rule survives `ethergate
/// serve` being stopped and started: the tunnel goes down (the client's
/// session ends and its own retry logs in again, with the same lease), the
/// DNAT flow stays in the pinned maps, the new process attaches its tap
/// programs, and the inner TCP connection carries on with every byte.
#[test]
fn a_dnat_connection_of_a_vpn_client_survives_a_restart() {
    let topo = recipe_topology();
    // A port forward to a stream receiver on the private host.
    let (state, config) = recipe_config_with_nat(
        &topo,
        "\n[[nat.dnat]]\nsource = \"192.168.0.0/16\"\nprotocol = \"tcp\"\nport = 7300\n\
         to = \"10.0.1.26:7300\"\n",
    );
    common::mount_pin_base();
    let mut serve = start_serve(&topo, &config);

    let client = SoftEtherClient::start(&topo, "client").expect("vpnclient");
    let tap = account(&client);
    // SoftEther's shortest retry interval: the client is back within ~5 s.
    client
        .account_retry_set("acc", 999, 5)
        .expect("AccountRetrySet");
    client.account_connect("acc").expect("AccountConnect");
    if let Err(e) = client.wait_connected("acc", Duration::from_secs(20)) {
        panic!("vpnclient did not connect: {e}\n{}", serve.log());
    }
    let lease = Udhcpc::new(&tap)
        .static_routes(true)
        .run(&topo, "client")
        .unwrap_or_else(|e| panic!("no DHCP lease: {e}\n{}", serve.log()));

    let receiver =
        ethergate_netns::stream::receive(&topo, "private", "10.0.1.26:7300").expect("receiver");
    let sender = ethergate_netns::stream::send_paced(
        &topo,
        "client",
        "192.168.30.1:7300",
        Duration::from_secs(25),
    )
    .expect("connect through the tunnel and DNAT");
    std::thread::sleep(Duration::from_secs(3));

    assert_eq!(serve.stop(), Some(0), "{}", serve.log());
    let mut serve = start_serve(&topo, &config);
    assert!(
        serve
            .log()
            .contains("NAT state: adopted the flows of the previous process"),
        "{}",
        serve.log()
    );
    // No AccountConnect: the client's own retry brings the tunnel back.
    common::wait_for(&mut serve, "session established", Duration::from_secs(60));

    let sent = sender.join().expect("sender");
    let received = receiver.join().expect("receiver");
    assert_eq!(
        received.peer.ip(),
        lease.ip,
        "DNAT keeps the client's address"
    );
    assert_eq!(
        received.bytes, sent,
        "every byte arrived, in one connection"
    );
    eprintln!(
        "VPN client's DNAT connection across a restart: longest gap {:?} (tunnel down and \
         back) over {} bytes",
        received.longest_gap, received.bytes
    );
    drop(serve);
    let _ = topo.run("nat", &[common::BIN, "nat", "forget"]);
    let _ = std::fs::remove_dir_all(&state);
}
