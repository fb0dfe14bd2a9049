//! Whether a store's master passphrase is weak ([`weakness`]): shorter than
//! [`MIN_PASSPHRASE_LEN`] characters, a short unit repeated (one character, "ab" * 8,
//! "passwordpassword"), or one of the passwords that
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
    /// A unit of fewer than [`MIN_PASSPHRASE_LEN`] characters repeated (one character,
    /// "abababab...", "passwordpassword"): it is no stronger than its unit.
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
            Weakness::Repeated => "the passphrase is one character or a short sequence \
                                   repeated: it is no stronger than what is repeated, and a \
                                   guesser tries those first"
                .to_owned(),
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

/// Why `passphrase` is weak, if it is. Length and repetition are counted in UTF-8
/// characters (bytes when it is not UTF-8).
pub fn weakness(passphrase: &[u8]) -> Option<Weakness> {
    let units: Vec<u32> = match std::str::from_utf8(passphrase) {
        Ok(s) => s.chars().map(u32::from).collect(),
        Err(_) => passphrase.iter().map(|&b| u32::from(b)).collect(),
    };
    if COMMON
        .iter()
        .any(|c| c.len() == passphrase.len() && c.eq_ignore_ascii_case(passphrase))
    {
        return Some(Weakness::Common);
    }
    if repeated_unit(&units).is_some_and(|unit| unit < MIN_PASSPHRASE_LEN) {
        return Some(Weakness::Repeated);
    }
    if units.len() < MIN_PASSPHRASE_LEN {
        return Some(Weakness::Short);
    }
    None
}

/// The length of the shortest unit that `units` is two or more copies of, if any.
fn repeated_unit(units: &[u32]) -> Option<usize> {
    let n = units.len();
    (1..=n / 2).find(|&k| n % k == 0 && units[k..] == units[..n - k])
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
        // Characters, not bytes: a repeated multi-byte character.
        assert_eq!(
            weakness("é".repeat(13).as_bytes()),
            Some(Weakness::Repeated)
        );
        assert_eq!(
            weakness("€".repeat(12).as_bytes()),
            Some(Weakness::Repeated)
        );
        // A short unit repeated.
        assert_eq!(
            weakness("ab".repeat(8).as_bytes()),
            Some(Weakness::Repeated)
        );
        assert_eq!(weakness(b"passwordpassword"), Some(Weakness::Repeated));
        assert_eq!(
            weakness("äöü".repeat(5).as_bytes()),
            Some(Weakness::Repeated)
        );
        // Not a whole number of copies, or a unit as long as a good passphrase: not flagged.
        assert_eq!(weakness(b"abababababababa"), None);
        assert_eq!(weakness(b"tulip oxygen crane tulip oxygen crane "), None);
        assert_eq!(
            weakness(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
            Some(Weakness::Repeated)
        );
        assert_eq!(weakness(b"short pw"), Some(Weakness::Short));
        assert_eq!(weakness("ünïcödé pässwörd".as_bytes()), None);
        assert_eq!(weakness("ünïcödé".as_bytes()), Some(Weakness::Short));
        assert_eq!(weakness(b"tulip oxygen crane velvet"), None);
        for w in [Weakness::Short, Weakness::Repeated, Weakness::Common] {
            assert!(!w.message().contains("tulip"));
        }
    }
}
