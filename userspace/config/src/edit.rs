//! Changes to a config file's users made the way an operator would make
//! them by hand: the rest of the file — comments, blank lines, key order,
//! quoting — stays byte for byte as it was.
//!
//! Invariant: an edit either applies completely or returns an error and
//! leaves the document untouched, and [`UsersEdit::finish`] only returns
//! text that parses as a valid [`Config`]. Writing it to disk (atomically)
//! and telling a running serve are the caller's job.
//!
//! Users live in `[[hub.user]]` tables under their `[[hub]]`. A new user's
//! table is placed right after the hub's last user (toml_edit positions a
//! table without a position after the table before it in the tree), so it
//! can never end up under another hub.

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, Value};

use crate::{Config, ConfigErrors, PasswordHash, PublicKey, check_user_name};

/// Why an edit was refused; the file is not changed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the config is not valid TOML: {0}")]
    Syntax(String),
    #[error("no hub named {0:?} in the config")]
    NoHub(String),
    #[error("hub {hub:?} has no user {user:?}")]
    NoUser { hub: String, user: String },
    #[error("hub {hub:?} already has a user {user:?}")]
    UserExists { hub: String, user: String },
    #[error("user name {name:?} {reason}")]
    BadName { name: String, reason: String },
    #[error(
        "{0} is written in a form this command does not edit (inline tables); edit the file by hand"
    )]
    Unsupported(String),
    #[error("the edited config would not be valid:\n{0}")]
    Invalid(ConfigErrors),
}

/// How a user's password was kept before [`UsersEdit::set_password`]
/// replaced it with a hash, so the CLI can say what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviousCredential {
    Hash,
    Plaintext,
    /// The password file, as written in the config; it is no longer read.
    File(String),
    None,
}

/// A config file's text opened for user edits.
pub struct UsersEdit {
    doc: DocumentMut,
    origin: String,
}

impl UsersEdit {
    /// `origin` names the file in validation messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, EditError> {
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| EditError::Syntax(e.to_string()))?;
        Ok(Self {
            doc,
            origin: origin.to_owned(),
        })
    }

    /// Adds `name` to `hub` with a password hash.
    pub fn add_user(
        &mut self,
        hub: &str,
        name: &str,
        hash: &PasswordHash,
    ) -> Result<(), EditError> {
        let table = self.insert_user(hub, name)?;
        table.insert("password_hash", toml_edit::value(hash.to_base64()));
        Ok(())
    }

    /// Adds `name` to `hub` with a WireGuard key, and a password hash and
    /// a preshared key file when given. The tunnel address is the one
    /// validation picks for it, written into the file so that it never
    /// moves.
    pub fn add_wireguard_user(
        &mut self,
        hub: &str,
        name: &str,
        public_key: &PublicKey,
        hash: Option<&PasswordHash>,
        preshared_key_file: Option<&str>,
    ) -> Result<std::net::Ipv4Addr, EditError> {
        let table = self.insert_user(hub, name)?;
        if let Some(hash) = hash {
            table.insert("password_hash", toml_edit::value(hash.to_base64()));
        }
        table.insert(
            "wireguard_public_key",
            toml_edit::value(public_key.to_base64()),
        );
        if let Some(file) = preshared_key_file {
            table.insert("wireguard_preshared_key_file", toml_edit::value(file));
        }
        let preview = Config::from_str_with_origin(&self.doc.to_string(), &self.origin)
            .map_err(EditError::Invalid)?;
        let address = preview
            .hub(hub)
            .and_then(|h| h.wireguard_peer(name))
            .map(|p| p.address)
            .ok_or_else(|| EditError::NoHub(hub.to_owned()))?;
        self.user_mut(hub, name)?
            .insert("wireguard_address", toml_edit::value(address.to_string()));
        Ok(address)
    }

    /// A new, empty `[[hub.user]]` table for `name` after the hub's last user.
    fn insert_user(&mut self, hub: &str, name: &str) -> Result<&mut Table, EditError> {
        check_user_name(name).map_err(|reason| EditError::BadName {
            name: name.to_owned(),
            reason,
        })?;
        let hub_table = self.hub_mut(hub)?;
        let hub_name = display_name(hub_table, hub);
        if !hub_table.contains_key("user") {
            hub_table.insert("user", Item::ArrayOfTables(ArrayOfTables::new()));
        }
        let users = users_mut(hub_table, &hub_name)?;
        if find_user(users, name).is_some() {
            return Err(EditError::UserExists {
                hub: hub_name,
                user: name.to_owned(),
            });
        }
        let mut table = Table::new();
        table.insert("name", toml_edit::value(name));
        users.push(table);
        let last = users.len() - 1;
        users.get_mut(last).ok_or_else(|| EditError::NoUser {
            hub: hub_name,
            user: name.to_owned(),
        })
    }

    /// Gives `name` a new password hash; a plaintext `password` or a
    /// `password_file` it had is dropped (the hash replaces them).
    pub fn set_password(
        &mut self,
        hub: &str,
        name: &str,
        hash: &PasswordHash,
    ) -> Result<PreviousCredential, EditError> {
        let user = self.user_mut(hub, name)?;
        let previous = if let Some(file) = user.get("password_file") {
            PreviousCredential::File(file.as_str().unwrap_or_default().to_owned())
        } else if user.contains_key("password") {
            PreviousCredential::Plaintext
        } else if user.contains_key("password_hash") {
            PreviousCredential::Hash
        } else {
            PreviousCredential::None
        };
        user.remove("password");
        user.remove("password_file");
        let new = Value::from(hash.to_base64());
        match user.get_mut("password_hash").and_then(Item::as_value_mut) {
            // Keep the line's spacing and any trailing comment.
            Some(old) => {
                let decor = old.decor().clone();
                *old = new;
                *old.decor_mut() = decor;
            }
            None => {
                user.insert("password_hash", Item::Value(new));
            }
        }
        Ok(previous)
    }

    /// Removes `name` from `hub`, with the comment lines written above it.
    pub fn remove_user(&mut self, hub: &str, name: &str) -> Result<(), EditError> {
        let hub_table = self.hub_mut(hub)?;
        let hub_name = display_name(hub_table, hub);
        let users = users_mut(hub_table, &hub_name)?;
        let index = find_user(users, name).ok_or_else(|| EditError::NoUser {
            hub: hub_name.clone(),
            user: name.to_owned(),
        })?;
        users.remove(index);
        if users.is_empty() {
            hub_table.remove("user");
        }
        Ok(())
    }

    /// The edited text and the config it parses to; an edit that would
    /// make the file invalid (for this or any other reason) is refused.
    pub fn finish(self) -> Result<(String, Config), EditError> {
        let text = self.doc.to_string();
        let config =
            Config::from_str_with_origin(&text, &self.origin).map_err(EditError::Invalid)?;
        Ok((text, config))
    }

    fn hub_mut(&mut self, hub: &str) -> Result<&mut Table, EditError> {
        let hubs = match self.doc.get_mut("hub") {
            None => return Err(EditError::NoHub(hub.to_owned())),
            Some(Item::ArrayOfTables(hubs)) => hubs,
            Some(_) => return Err(EditError::Unsupported("hub".to_owned())),
        };
        hubs.iter_mut()
            .find(|t| {
                t.get("name")
                    .and_then(Item::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(hub))
            })
            .ok_or_else(|| EditError::NoHub(hub.to_owned()))
    }

    fn user_mut(&mut self, hub: &str, name: &str) -> Result<&mut Table, EditError> {
        let hub_table = self.hub_mut(hub)?;
        let hub_name = display_name(hub_table, hub);
        let missing = || EditError::NoUser {
            hub: hub_name.clone(),
            user: name.to_owned(),
        };
        if !hub_table.contains_key("user") {
            return Err(missing());
        }
        let users = users_mut(hub_table, &hub_name)?;
        let index = find_user(users, name).ok_or_else(missing)?;
        users.get_mut(index).ok_or_else(missing)
    }
}

/// The hub's name as the file spells it.
fn display_name(hub: &Table, asked: &str) -> String {
    hub.get("name")
        .and_then(Item::as_str)
        .unwrap_or(asked)
        .to_owned()
}

fn users_mut<'a>(hub: &'a mut Table, hub_name: &str) -> Result<&'a mut ArrayOfTables, EditError> {
    match hub.get_mut("user") {
        Some(Item::ArrayOfTables(users)) => Ok(users),
        _ => Err(EditError::Unsupported(format!("hub {hub_name:?}'s users"))),
    }
}

/// SoftEther compares user names ASCII-case-insensitively, and so do the
/// config's uniqueness check and logins.
fn find_user(users: &ArrayOfTables, name: &str) -> Option<usize> {
    users.iter().position(|t| {
        t.get("name")
            .and_then(Item::as_str)
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TWO_HUBS: &str = r#"# operator's header comment
[server]
listen = ["0.0.0.0:443"]   # keep this comment

[[hub]]
name = "office"
bridge = "tap_00"
bridge_address = "192.168.30.1/24"

# alice runs the office
[[hub.user]]
name = "alice"
password_hash = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="  # set in 2025
max_macs_per_session = 32

[hub.limits]
max_sessions_per_user = 4

[[hub]]
name = "lab"
bridge = "tap_01"
bridge_address = "192.168.31.1/24"

[[hub.user]]
name = "carol"
password = "plain-text-pass"
"#;

    #[test]
    fn a_wireguard_user_gets_a_pinned_address() {
        let text = format!(
            "{TWO_HUBS}\n[hub.dhcp]\nrange = \"192.168.31.10-192.168.31.20\"\n[hub.wireguard]\nlisten = \"0.0.0.0:51820\"\n"
        );
        let mut edit = UsersEdit::parse(&text, "t.toml").expect("parse");
        let key = PublicKey([7; 32]);
        let address = edit
            .add_wireguard_user("lab", "phone", &key, None, Some("wireguard-lab-phone.psk"))
            .expect("added");
        let (after, config) = finish(edit);
        assert!(
            after.contains(&format!("wireguard_address = \"{address}\"")),
            "{after}"
        );
        let hub = config.hub("lab").expect("hub");
        let phone = hub.user("phone").expect("user");
        assert!(!phone.can_log_in());
        assert_eq!(hub.wireguard_peer("phone").expect("peer").address, address);
        assert!(hub.dhcp.as_ref().expect("dhcp").range.contains(address));
        let psk = phone
            .wireguard
            .as_ref()
            .and_then(|w| w.preshared_key_file.as_ref());
        assert_eq!(
            psk.map(|f| f.path.as_path()),
            Some(std::path::Path::new("wireguard-lab-phone.psk"))
        );
    }

    fn hash(user: &str, password: &str) -> PasswordHash {
        PasswordHash::from_password(user, password)
    }

    fn finish(edit: UsersEdit) -> (String, Config) {
        edit.finish().expect("valid after edit")
    }

    /// Lines of `before` missing from `after`, counted as a multiset (the
    /// same line may appear under several hubs), in `before`'s order.
    fn removed_lines<'a>(before: &'a str, after: &str) -> Vec<&'a str> {
        let mut left: Vec<&str> = after.lines().collect();
        let mut removed: Vec<&str> = before
            .lines()
            .filter(|line| match left.iter().position(|l| l == line) {
                Some(i) => {
                    left.remove(i);
                    false
                }
                None => true,
            })
            .collect();
        removed.sort_unstable();
        removed
    }

    #[test]
    fn add_puts_the_user_under_its_own_hub_and_keeps_every_other_byte() {
        let mut edit = UsersEdit::parse(TWO_HUBS, "t.toml").unwrap();
        edit.add_user("OFFICE", "bob", &hash("bob", "pw")).unwrap();
        let (text, config) = finish(edit);
        let office = config.hub("office").unwrap();
        let names: Vec<&str> = office.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(office.users[1].password_hash, hash("bob", "pw"));
        assert_eq!(config.hub("lab").unwrap().users.len(), 1);
        assert!(removed_lines(TWO_HUBS, &text).is_empty(), "{text}");
        // Only the new table's lines were added, right after alice.
        let hash_line = format!("password_hash = \"{}\"", hash("bob", "pw").to_base64());
        let mut added = vec!["", "[[hub.user]]", "name = \"bob\"", &hash_line];
        added.sort_unstable();
        assert_eq!(removed_lines(&text, TWO_HUBS), added);
        assert!(
            text.contains(&format!(
                "max_macs_per_session = 32\n\n[[hub.user]]\nname = \"bob\"\n{hash_line}\n\n[hub.limits]"
            )),
            "{text}"
        );
    }

    #[test]
    fn add_to_a_hub_without_users() {
        let text = "[[hub]]\nname = \"a\"\nbridge = \"tap_00\"\nbridge_address = \"192.168.30.1/24\"\n\n[[hub]]\nname = \"b\"\nbridge = \"tap_01\"\nbridge_address = \"192.168.31.1/24\"\n";
        let mut edit = UsersEdit::parse(text, "t.toml").unwrap();
        edit.add_user("a", "dave", &hash("dave", "x")).unwrap();
        let (out, config) = finish(edit);
        assert_eq!(config.hub("a").unwrap().users.len(), 1, "{out}");
        assert!(config.hub("b").unwrap().users.is_empty(), "{out}");
    }

    #[test]
    fn add_refuses_duplicates_bad_names_and_unknown_hubs() {
        let mut edit = UsersEdit::parse(TWO_HUBS, "t.toml").unwrap();
        let h = hash("x", "y");
        assert!(matches!(
            edit.add_user("office", "ALICE", &h),
            Err(EditError::UserExists { .. })
        ));
        assert!(matches!(
            edit.add_user("office", "bad/name", &h),
            Err(EditError::BadName { .. })
        ));
        assert!(matches!(
            edit.add_user("nowhere", "eve", &h),
            Err(EditError::NoHub(_))
        ));
        // Nothing changed.
        assert_eq!(edit.finish().unwrap().0, TWO_HUBS);
    }

    #[test]
    fn passwd_replaces_the_hash_in_place_with_its_comment() {
        let mut edit = UsersEdit::parse(TWO_HUBS, "t.toml").unwrap();
        let new = hash("alice", "new");
        assert_eq!(
            edit.set_password("office", "Alice", &new).unwrap(),
            PreviousCredential::Hash
        );
        let (text, config) = finish(edit);
        assert_eq!(config.hub("office").unwrap().users[0].password_hash, new);
        assert_eq!(
            removed_lines(TWO_HUBS, &text),
            ["password_hash = \"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"  # set in 2025"]
        );
        assert!(text.contains(&format!(
            "password_hash = \"{}\"  # set in 2025",
            new.to_base64()
        )));
    }

    #[test]
    fn passwd_drops_a_plaintext_password() {
        let mut edit = UsersEdit::parse(TWO_HUBS, "t.toml").unwrap();
        let new = hash("carol", "better");
        assert_eq!(
            edit.set_password("lab", "carol", &new).unwrap(),
            PreviousCredential::Plaintext
        );
        let (text, config) = finish(edit);
        let carol = &config.hub("lab").unwrap().users[0];
        assert_eq!(carol.password_hash, new);
        assert!(!carol.from_plaintext);
        assert_eq!(
            removed_lines(TWO_HUBS, &text),
            ["password = \"plain-text-pass\""]
        );
    }

    #[test]
    fn passwd_replaces_a_password_file() {
        let text = "[[hub]]\nname = \"a\"\nbridge = \"tap_00\"\nbridge_address = \"192.168.30.1/24\"\n[[hub.user]]\nname = \"u\"\npassword_file = \"u.password\"\n";
        let mut edit = UsersEdit::parse(text, "t.toml").unwrap();
        let previous = edit.set_password("a", "u", &hash("u", "p")).unwrap();
        assert_eq!(previous, PreviousCredential::File("u.password".into()));
        let (_, config) = finish(edit);
        let user = &config.hub("a").unwrap().users[0];
        assert!(user.password_file.is_none());
        assert_eq!(user.password_hash, hash("u", "p"));
    }

    #[test]
    fn del_removes_the_user_and_its_comment_only() {
        let mut edit = UsersEdit::parse(TWO_HUBS, "t.toml").unwrap();
        edit.remove_user("office", "alice").unwrap();
        let (text, config) = finish(edit);
        assert!(config.hub("office").unwrap().users.is_empty());
        let mut gone = vec![
            "",
            "# alice runs the office",
            "[[hub.user]]",
            "name = \"alice\"",
            "password_hash = \"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\"  # set in 2025",
            "max_macs_per_session = 32",
        ];
        gone.sort_unstable();
        assert_eq!(removed_lines(TWO_HUBS, &text), gone);
        // [hub.limits] still belongs to office.
        assert!(text.contains("[hub.limits]\nmax_sessions_per_user = 4"));
    }

    #[test]
    fn del_of_an_unknown_user_changes_nothing() {
        let mut edit = UsersEdit::parse(TWO_HUBS, "t.toml").unwrap();
        assert!(matches!(
            edit.remove_user("lab", "alice"),
            Err(EditError::NoUser { .. })
        ));
        assert_eq!(edit.finish().unwrap().0, TWO_HUBS);
    }

    #[test]
    fn an_edit_that_leaves_the_file_invalid_is_refused() {
        // The file is already broken elsewhere: the edit must not write it.
        let broken = TWO_HUBS.replace("tap_01", "tap_00");
        let mut edit = UsersEdit::parse(&broken, "t.toml").unwrap();
        edit.add_user("office", "bob", &hash("bob", "pw")).unwrap();
        assert!(matches!(edit.finish(), Err(EditError::Invalid(_))));
    }

    #[test]
    fn inline_user_tables_are_refused_not_mangled() {
        let text = "[[hub]]\nname = \"a\"\nbridge = \"tap_00\"\nbridge_address = \"192.168.30.1/24\"\nuser = [{ name = \"u\", password_hash = \"AAAAAAAAAAAAAAAAAAAAAAAAAAA=\" }]\n";
        let mut edit = UsersEdit::parse(text, "t.toml").unwrap();
        assert!(matches!(
            edit.add_user("a", "v", &hash("v", "p")),
            Err(EditError::Unsupported(_))
        ));
    }

    #[test]
    fn the_shipped_config_takes_a_user_and_gives_it_back() {
        let mut edit = UsersEdit::parse(crate::DEFAULT_CONFIG, "default").unwrap();
        edit.add_user("mikalab", "bob", &hash("bob", "pw")).unwrap();
        let (added, config) = finish(edit);
        assert_eq!(config.hubs[0].users.len(), 2);
        let mut edit = UsersEdit::parse(&added, "default").unwrap();
        edit.remove_user("mikalab", "bob").unwrap();
        assert_eq!(finish(edit).0, crate::DEFAULT_CONFIG);
    }

    proptest! {
        /// Any sequence of adds and removes on the two-hub file leaves
        /// exactly the expected users under each hub, and every line of the
        /// original that does not belong to a removed user is still there.
        #[test]
        fn edits_keep_users_under_their_hubs(ops in proptest::collection::vec((any::<bool>(), 0usize..2, 0usize..4), 0..12)) {
            let names = ["bob", "dave", "erin", "frank"];
            let hubs = ["office", "lab"];
            let mut expected: Vec<Vec<String>> = vec![vec!["alice".into()], vec!["carol".into()]];
            let mut text = TWO_HUBS.to_owned();
            for (add, hub, name) in ops {
                let mut edit = UsersEdit::parse(&text, "t.toml").unwrap();
                let name = names[name];
                let present = expected[hub].iter().any(|n| n == name);
                let result = if add {
                    edit.add_user(hubs[hub], name, &hash(name, "p"))
                } else {
                    edit.remove_user(hubs[hub], name)
                };
                prop_assert_eq!(result.is_ok(), add != present);
                if result.is_ok() {
                    if add { expected[hub].push(name.to_owned()) } else { expected[hub].retain(|n| n != name) }
                }
                let (new_text, config) = edit.finish().unwrap();
                for (i, hub) in hubs.iter().enumerate() {
                    let got: Vec<String> = config.hub(hub).unwrap().users.iter().map(|u| u.name.clone()).collect();
                    prop_assert_eq!(&got, &expected[i]);
                }
                text = new_text;
            }
            for line in ["# operator's header comment", "listen = [\"0.0.0.0:443\"]   # keep this comment", "[hub.limits]", "max_sessions_per_user = 4"] {
                prop_assert!(text.lines().any(|l| l == line), "{} lost:\n{}", line, text);
            }
        }
    }
}
