//! Whether a store's master passphrase is weak ([`weakness`]): shorter than
//! [`MIN_PASSPHRASE_LEN`] characters, one character repeated, or one of the passwords that
//! lead every leaked-password list. Argon2id makes each guess expensive; it cannot make a
//! passphrase that is guessed first safe. `keycell store init` warns with it (it does not
//! refuse: the choice is the user's). Nothing here copies the passphrase.

/// Passphrases shorter than this many characters are reported as short.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// Why a passphrase is weak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    /// Fewer than [`MIN_PASSPHRASE_LEN`] characters.
    Short,
    /// One character repeated.
    Repeated,
    /// One of [`COMMON`] (ignoring ASCII case).
    Common,
}

impl Weakness {
    /// The warning, which names neither the passphrase nor its length.
    pub fn message(self) -> String {
        match self {
            Weakness::Short => format!(
                "the passphrase is shorter than {MIN_PASSPHRASE_LEN} characters: a guesser \
                 tries short ones first (use several random words)"
            ),
            Weakness::Repeated => {
                "the passphrase is one character repeated: a guesser tries those first".to_owned()
            }
            Weakness::Common => "the passphrase is one of the most common passwords: every \
                                 guesser tries it first"
                .to_owned(),
        }
    }
}

/// Passwords at the top of every published leaked-password ranking (lower case).
const COMMON: &[&[u8]] = &[
    b"password",
    b"password1",
    b"password123",
    b"passw0rd",
    b"p@ssw0rd",
    b"p@ssword",
    b"123456789012",
    b"1234567890",
    b"123456789",
    b"12345678",
    b"qwertyuiop",
    b"qwerty123456",
    b"1q2w3e4r5t6y",
    b"1qaz2wsx3edc",
    b"zaq12wsxcde3",
    b"iloveyou",
    b"iloveyou123",
    b"letmein",
    b"letmein123",
    b"trustno1",
    b"changeme",
    b"changeme123",
    b"welcome123",
    b"administrator",
    b"correct horse battery staple",
    b"correcthorsebatterystaple",
    b"hunter2",
    b"qwertyqwerty",
    b"asdfghjkl",
    b"football123",
    b"baseball123",
    b"superman123",
    b"princess123",
    b"sunshine123",
    b"starwars123",
    b"monkey123456",
    b"dragon123456",
    b"keycell",
    b"keycell123",
];

/// Why `passphrase` is weak, if it is. Length is counted in UTF-8 characters (bytes when
/// it is not UTF-8).
pub fn weakness(passphrase: &[u8]) -> Option<Weakness> {
    let chars = match std::str::from_utf8(passphrase) {
        Ok(s) => s.chars().count(),
        Err(_) => passphrase.len(),
    };
    if COMMON
        .iter()
        .any(|c| c.len() == passphrase.len() && c.eq_ignore_ascii_case(passphrase))
    {
        return Some(Weakness::Common);
    }
    if chars > 1 && passphrase.iter().all(|&b| b == passphrase[0]) {
        return Some(Weakness::Repeated);
    }
    if chars < MIN_PASSPHRASE_LEN {
        return Some(Weakness::Short);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_and_strong() {
        assert_eq!(weakness(b"PassWord"), Some(Weakness::Common));
        assert_eq!(
            weakness(b"correct horse battery staple"),
            Some(Weakness::Common)
        );
        assert_eq!(weakness(b"aaaaaaaaaaaaaaaa"), Some(Weakness::Repeated));
        assert_eq!(weakness(b"short pw"), Some(Weakness::Short));
        assert_eq!(weakness("ünïcödé pässwörd".as_bytes()), None);
        assert_eq!(weakness("ünïcödé".as_bytes()), Some(Weakness::Short));
        assert_eq!(weakness(b"tulip oxygen crane velvet"), None);
        for w in [Weakness::Short, Weakness::Repeated, Weakness::Common] {
            assert!(!w.message().contains("tulip"));
        }
    }
}
