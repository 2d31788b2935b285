//! vpncmd's printed output, parsed just enough for tests: did the command
//! complete, which SoftEther error code did it print, and the `Item|Value`
//! tables most `*Get` / `*List` commands print.

/// The text vpncmd prints after a command succeeded.
const COMPLETED: &str = "The command completed successfully.";

/// What vpncmd prints before the code of a failed command.
const ERROR_CODE: &str = "Error code: ";

#[derive(Debug, Clone)]
pub struct VpncmdOutput {
    raw: String,
}

impl VpncmdOutput {
    pub(crate) fn new(raw: String) -> Self {
        Self { raw }
    }

    /// Everything vpncmd printed, banner included.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The command's own output: what follows the `VPN Server>` /
    /// `VPN Client>` prompt line that echoes it.
    pub fn body(&self) -> &str {
        let mut offset = 0;
        for line in self.raw.split_inclusive('\n') {
            offset += line.len();
            if (line.starts_with("VPN Server") || line.starts_with("VPN Client"))
                && line.contains('>')
            {
                return &self.raw[offset..];
            }
        }
        &self.raw
    }

    pub fn completed(&self) -> bool {
        self.raw.contains(COMPLETED)
    }

    /// The SoftEther `ERR_*` code of a failed command, if vpncmd printed one.
    pub fn error_code(&self) -> Option<u32> {
        let at = self.raw.find(ERROR_CODE)? + ERROR_CODE.len();
        let digits: String = self.raw[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }

    /// Rows of the table in the body, each split at `|` and trimmed; ruler
    /// lines (`---+---`) are left out, header rows are kept.
    pub fn rows(&self) -> Vec<Vec<String>> {
        self.body()
            .lines()
            .filter(|l| l.contains('|'))
            .filter(|l| !l.chars().all(|c| c == '-' || c == '+'))
            .map(|l| l.split('|').map(|c| c.trim().to_owned()).collect())
            .collect()
    }

    /// The value of the first `key|value` row whose key is `key`.
    pub fn value(&self, key: &str) -> Option<String> {
        self.rows()
            .into_iter()
            .find(|r| r.len() == 2 && r[0] == key)
            .map(|mut r| r.swap_remove(1))
    }

    /// All `key|value` rows, header (`Item|Value`) excluded.
    pub fn items(&self) -> Vec<(String, String)> {
        self.rows()
            .into_iter()
            .filter(|r| r.len() == 2 && !(r[0] == "Item" && r[1] == "Value"))
            .map(|mut r| {
                let value = r.swap_remove(1);
                let key = r.swap_remove(0);
                (key, value)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::VpncmdOutput;

    const STATUS: &str = "vpncmd command - SoftEther VPN Command Line Management Utility\n\
Connection has been established with VPN Client \"localhost\".\n\n\
VPN Client>AccountStatusGet acc1\n\
AccountStatusGet command - Get Current VPN Connection Setting Status\n\
Item                                      |Value\n\
------------------------------------------+----------------\n\
VPN Connection Setting Name               |acc1\n\
Session Status                            |Connection Completed (Session Established)\n\
Number of TCP Connections                 |2\n\
The command completed successfully.\n\n";

    #[test]
    fn parses_a_status_table() {
        let out = VpncmdOutput::new(STATUS.to_owned());
        assert!(out.completed());
        assert_eq!(out.error_code(), None);
        assert_eq!(
            out.value("Session Status").as_deref(),
            Some("Connection Completed (Session Established)")
        );
        assert_eq!(out.items().len(), 3);
        assert!(out.body().starts_with("AccountStatusGet command"));
    }

    #[test]
    fn finds_the_error_code() {
        let out = VpncmdOutput::new(
            "VPN Server>HubCreate TEST\nError occurred. (Error code: 29)\nThe object exists.\n"
                .to_owned(),
        );
        assert!(!out.completed());
        assert_eq!(out.error_code(), Some(29));
    }
}
