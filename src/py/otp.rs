//! `HOTP` and `TOTP`: one-time passwords over a secret in a guarded region, thin classes
//! over a [`KeyCell`] (life cycle, locking and fork rules in `key_cell.rs`). This file
//! parses arguments; the codes, the constant-time window check, TOTP time steps and
//! `otpauth://` URIs (loading and writing) are `crate::otp`.
//!
//! The object owns its own region (`crate::otp::OtpKey`: the HMAC pads of its algorithm and
//! a copy of the secret), filled either from a `SecretKey`'s bytes, borrowed under that
//! key's lock, or by decoding a caller's base32 buffer straight into it. So the secret never
//! becomes a Python `str`, `bytes` or `int`. An OTP object made from a `SecretKey` is
//! registered with the key's cell: destroying the key destroys the object's copy too, and
//! every later use raises `KeyDestroyedError` (DESIGN.md invariant 11).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyString};

use crate::memory;
use crate::otp::{uri, Digits, OtpAlgorithm, OtpKey, TimeStep};

use super::args::{handle, type_name, IntArg};
use super::bytes_like::read_secret_in_place;
use super::errors::{Error, Result};
use super::key_cell::{key_handle_methods, CellKey, KeyCell, KeyHandle, Revoke};
use super::secret_key::SecretKey;

/// Largest `look_ahead`, `past` or `future`: a bound on the work one `verify` call does.
const MAX_WINDOW: u64 = 1000;

impl CellKey for OtpKey {
    fn secret(&self) -> std::result::Result<&[u8], memory::MemoryError> {
        OtpKey::secret(self)
    }
    fn protection(&self) -> memory::Protection {
        OtpKey::protection(self)
    }
}

fn parse_otp_algorithm(name: &str) -> Result<OtpAlgorithm> {
    OtpAlgorithm::from_name(name).ok_or_else(|| {
        let shown: String = name.chars().take(40).collect();
        Error::Value(format!(
            "unsupported OTP algorithm {shown:?}: \"sha1\", \"sha256\" or \"sha512\""
        ))
    })
}

fn parse_digits(digits: i64) -> Result<Digits> {
    u32::try_from(digits)
        .ok()
        .and_then(Digits::new)
        .ok_or_else(|| Error::Value("digits must be between 6 and 10".to_owned()))
}

/// A non-negative 64-bit integer argument (counters, window sizes): out of range is a
/// `ValueError`, not the `OverflowError` of a plain `u64` argument.
fn parse_u64(value: IntArg, what: &str) -> Result<u64> {
    value
        .0
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| Error::Value(format!("{what} must be an integer between 0 and 2**64 - 1")))
}

fn window(value: IntArg, what: &str) -> Result<u64> {
    value
        .0
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v <= MAX_WINDOW)
        .ok_or_else(|| Error::Value(format!("{what} must be between 0 and {MAX_WINDOW}")))
}

/// The code argument: exactly `digits` ASCII digits (`ValueError` otherwise; the message
/// does not echo the code).
fn parse_code(code: &Bound<'_, PyAny>, digits: Digits) -> Result<u64> {
    let s = code
        .cast::<PyString>()
        .map_err(|_| Error::Type(format!("code must be a str, not {}", type_name(code))))?;
    digits.parse(s.to_str()?).ok_or_else(|| {
        Error::Value(format!(
            "a code must be exactly {} ASCII digits",
            digits.get()
        ))
    })
}

/// Seconds since the epoch from an `int` or a finite `float` (rounded down).
fn timestamp(obj: &Bound<'_, PyAny>) -> Result<i64> {
    let out_of_range = || Error::Value("timestamp out of range".to_owned());
    if let Ok(f) = obj.cast::<PyFloat>() {
        let f = f.value().floor();
        if !f.is_finite() || f < i64::MIN as f64 || f >= i64::MAX as f64 {
            return Err(out_of_range());
        }
        return Ok(f as i64);
    }
    match obj.extract::<i64>() {
        Ok(t) => Ok(t),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => {
            Err(out_of_range())
        }
        Err(_) => Err(Error::Type(format!(
            "timestamp must be an int or float (seconds since the epoch), not {}",
            type_name(obj)
        ))),
    }
}

/// The cell of an OTP object over a `SecretKey`'s bytes: the OTP key is built from them,
/// borrowed under the key's lock, `make` wraps it in a cell (given whether the key is
/// exportable: the OTP object inherits it), and the cell is registered with the key, still
/// under its lock, so that destroying the key destroys the OTP object's copy too.
fn cell_from_secret_key(
    key: &Bound<'_, PyAny>,
    alg: OtpAlgorithm,
    allow_short: bool,
    make: impl FnOnce(OtpKey, bool) -> Result<KeyCell<OtpKey>>,
) -> Result<Arc<KeyCell<OtpKey>>> {
    let sk = handle::<SecretKey>(key, "key", "SecretKey", " (or use from_base32)")?.get();
    let live = sk.live()?;
    let otp = OtpKey::from_secret(alg, live.key().bytes()?, allow_short)?;
    let cell = Arc::new(make(otp, sk.exportable_now())?);
    let dependent: Arc<dyn Revoke> = cell.clone();
    sk.cell().add_dependent(Arc::downgrade(&dependent));
    drop(live);
    Ok(cell)
}

/// An OTP key decoded from the base32 text in `buf` straight into a guarded region.
fn key_from_base32(
    py: Python<'_>,
    buf: &Bound<'_, PyAny>,
    wipe: bool,
    alg: OtpAlgorithm,
    allow_short: bool,
) -> Result<OtpKey> {
    read_secret_in_place(py, buf, wipe, |text| {
        OtpKey::from_base32(alg, text, allow_short)
    })
}

/// An OTP key from the `otpauth://` URI of `kind` in `buf`, its secret decoded straight
/// into a guarded region, and the URI's other parameters.
fn key_from_uri(
    py: Python<'_>,
    buf: &Bound<'_, PyAny>,
    wipe: bool,
    kind: uri::OtpKind,
    allow_short: bool,
) -> Result<uri::Loaded> {
    read_secret_in_place(py, buf, wipe, |text| uri::load(text, kind, allow_short))
}

/// An `otpauth://` URI for the key of `cell`, as a `str`; `KeyNotExportableError` unless
/// the object is exportable (the URI is the secret).
fn provisioning_uri<'py>(
    py: Python<'py>,
    cell: &KeyCell<OtpKey>,
    what: uri::Provisioned,
    account: &str,
    issuer: Option<&str>,
    digits: Digits,
) -> Result<Bound<'py, PyString>> {
    cell.check_exportable()?;
    let live = cell.live()?;
    let text = uri::write(live.key(), what, account, issuer, digits)?;
    Ok(PyString::new(py, &text))
}

fn verify_in_window(
    py: Python<'_>,
    cell: &KeyCell<OtpKey>,
    code: u64,
    digits: Digits,
    (first, last): (u64, u64),
    floor: Option<u64>,
) -> Result<u64> {
    let found = cell.with_key(py, 0, |key| {
        Ok(key.verify(code, digits, first, last, floor)?)
    })?;
    found.ok_or(Error::InvalidCode(
        "the one-time code is wrong, expired or already used",
    ))
}

fn label(alg: OtpAlgorithm, digits: Digits, period: Option<u64>) -> String {
    match period {
        Some(p) => format!("{}, {} digits, {p} s", alg.name(), digits.get()),
        None => format!("{}, {} digits", alg.name(), digits.get()),
    }
}

/// HOTP (RFC 4226): counter-based one-time passwords whose secret stays in a guarded
/// region.
#[pyclass(frozen, module = "keycell._native", name = "HOTP")]
pub struct Hotp {
    cell: Arc<KeyCell<OtpKey>>,
    digits: Digits,
    initial_count: u64,
}

impl Hotp {
    fn wrap(py: Python<'_>, key: OtpKey, digits: Digits, exportable: bool) -> Result<Self> {
        Ok(Hotp::of(
            Arc::new(Hotp::cell_of(py, key, digits, exportable)?),
            digits,
        ))
    }

    fn cell_of(
        py: Python<'_>,
        key: OtpKey,
        digits: Digits,
        exportable: bool,
    ) -> Result<KeyCell<OtpKey>> {
        let label = label(key.algorithm(), digits, None);
        KeyCell::new(py, "HOTP", key, exportable, label)
    }

    fn of(cell: Arc<KeyCell<OtpKey>>, digits: Digits) -> Self {
        Hotp {
            cell,
            digits,
            initial_count: 0,
        }
    }
}

impl KeyHandle for Hotp {
    type Key = OtpKey;
    fn cell(&self) -> &KeyCell<OtpKey> {
        &self.cell
    }
}

key_handle_methods!(Hotp);

#[pymethods]
impl Hotp {
    /// HOTP over the bytes of `key` (a `SecretKey`, read under its lock and copied into
    /// this object's own guarded region with the HMAC pads). `digits` is 6 to 10;
    /// `algorithm` is "sha1" (default), "sha256" or "sha512". Secrets shorter than 128 bits
    /// raise `ValueError` unless `allow_short_secret=True` (for old 80-bit secrets). The
    /// object is exportable (`provisioning_uri`) only while `key` is.
    #[new]
    #[pyo3(signature = (key, *, digits = 6, algorithm = "sha1", allow_short_secret = false))]
    fn new(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        digits: i64,
        algorithm: &str,
        allow_short_secret: bool,
    ) -> Result<Self> {
        let digits = parse_digits(digits)?;
        let alg = parse_otp_algorithm(algorithm)?;
        let cell = cell_from_secret_key(key, alg, allow_short_secret, |otp, exportable| {
            Hotp::cell_of(py, otp, digits, exportable)
        })?;
        Ok(Hotp::of(cell, digits))
    }

    /// HOTP over a base32 secret (upper or lower case, padding optional, whitespace
    /// ignored) read from `buf` where it is and decoded straight into a guarded region.
    /// When `wipe` is true and `buf` is writable (a `bytearray`), it is zeroed afterwards,
    /// also when decoding fails. `str` is refused: it cannot be wiped.
    #[staticmethod]
    #[pyo3(signature = (
        buf, *, wipe = true, digits = 6, algorithm = "sha1", allow_short_secret = false,
        exportable = true
    ))]
    fn from_base32(
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        wipe: bool,
        digits: i64,
        algorithm: &str,
        allow_short_secret: bool,
        exportable: bool,
    ) -> Result<Self> {
        let digits = parse_digits(digits)?;
        let alg = parse_otp_algorithm(algorithm)?;
        let otp = key_from_base32(py, buf, wipe, alg, allow_short_secret)?;
        Hotp::wrap(py, otp, digits, exportable)
    }

    /// HOTP from an `otpauth://hotp/...` URI in `buf` (algorithm, digits and counter from
    /// the URI; the counter becomes `initial_count`), its secret decoded straight into a
    /// guarded region. When `wipe` is true and `buf` is writable, it is zeroed afterwards,
    /// also on failure. `str` is refused: it cannot be wiped.
    #[staticmethod]
    #[pyo3(signature = (buf, *, wipe = true, allow_short_secret = false, exportable = true))]
    fn from_uri(
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        wipe: bool,
        allow_short_secret: bool,
        exportable: bool,
    ) -> Result<Self> {
        let loaded = key_from_uri(py, buf, wipe, uri::OtpKind::Hotp, allow_short_secret)?;
        let mut hotp = Hotp::wrap(py, loaded.key, loaded.digits, exportable)?;
        hotp.initial_count = loaded.counter.unwrap_or(0);
        Ok(hotp)
    }

    /// The `counter` parameter of the URI this object was loaded from (`from_uri`), else 0.
    #[getter]
    fn initial_count(&self) -> u64 {
        self.initial_count
    }

    /// The code for `counter` (0 to 2**64 - 1), zero-padded to `digits` digits.
    fn at(&self, py: Python<'_>, counter: IntArg) -> Result<String> {
        let counter = parse_u64(counter, "counter")?;
        let code = self
            .cell
            .with_key(py, 0, |k| Ok(k.code(counter, self.digits)?))?;
        Ok(self.digits.format(code))
    }

    /// Verify `code` against the counters `counter` to `counter + look_ahead` (at most
    /// 1000); returns the counter that matched (store it plus one as the next `counter`).
    /// Every candidate is computed and compared in constant time, without an early exit.
    /// Raises `InvalidCode` when none matches, `ValueError` when `code` is not exactly
    /// `digits` ASCII digits.
    #[pyo3(
        signature = (code, counter, *, look_ahead = IntArg(Some(0))),
        text_signature = "($self, code, counter, *, look_ahead=0)"
    )]
    fn verify(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        counter: IntArg,
        look_ahead: IntArg,
    ) -> Result<u64> {
        let counter = parse_u64(counter, "counter")?;
        let look_ahead = window(look_ahead, "look_ahead")?;
        let code = parse_code(code, self.digits)?;
        let last = counter.saturating_add(look_ahead);
        verify_in_window(py, &self.cell, code, self.digits, (counter, last), None)
    }

    /// The number of digits of a code.
    #[getter]
    fn digits(&self) -> u32 {
        self.digits.get()
    }

    /// The HMAC hash: "sha1", "sha256" or "sha512".
    #[getter]
    fn algorithm(&self, py: Python<'_>) -> Result<&'static str> {
        self.cell.with_key(py, 0, |k| Ok(k.algorithm().name()))
    }

    /// An `otpauth://hotp/...` URI for authenticator apps (the secret as unpadded base32).
    /// Raises `KeyNotExportableError` unless the object is exportable: the URI is the
    /// secret.
    #[pyo3(
        signature = (account, *, issuer = None, initial_count = IntArg(Some(0))),
        text_signature = "($self, account, *, issuer=None, initial_count=0)"
    )]
    fn provisioning_uri<'py>(
        &self,
        py: Python<'py>,
        account: &str,
        issuer: Option<&str>,
        initial_count: IntArg,
    ) -> Result<Bound<'py, PyString>> {
        let counter = parse_u64(initial_count, "initial_count")?;
        let what = uri::Provisioned::Hotp { counter };
        provisioning_uri(py, &self.cell, what, account, issuer, self.digits)
    }
}

/// TOTP (RFC 6238): time-based one-time passwords whose secret stays in a guarded region,
/// with a constant-time window check and replay refusal.
#[pyclass(frozen, module = "keycell._native", name = "TOTP")]
pub struct Totp {
    cell: Arc<KeyCell<OtpKey>>,
    digits: Digits,
    clock: TimeStep,
}

impl Totp {
    fn wrap(
        py: Python<'_>,
        key: OtpKey,
        digits: Digits,
        period: i64,
        t0: i64,
        exportable: bool,
    ) -> Result<Self> {
        let clock = TimeStep::new(period, t0)?;
        let cell = Totp::cell_of(py, key, digits, &clock, exportable)?;
        Ok(Totp {
            cell: Arc::new(cell),
            digits,
            clock,
        })
    }

    fn cell_of(
        py: Python<'_>,
        key: OtpKey,
        digits: Digits,
        clock: &TimeStep,
        exportable: bool,
    ) -> Result<KeyCell<OtpKey>> {
        let label = label(key.algorithm(), digits, Some(clock.period()));
        KeyCell::new(py, "TOTP", key, exportable, label)
    }

    fn step_at(&self, at: Option<&Bound<'_, PyAny>>) -> Result<u64> {
        Ok(match at {
            Some(obj) => self.clock.step(timestamp(obj)?)?,
            None => self.clock.step_now()?,
        })
    }
}

impl KeyHandle for Totp {
    type Key = OtpKey;
    fn cell(&self) -> &KeyCell<OtpKey> {
        &self.cell
    }
}

key_handle_methods!(Totp);

#[pymethods]
impl Totp {
    /// TOTP over the bytes of `key` (a `SecretKey`, read under its lock and copied into
    /// this object's own guarded region with the HMAC pads). `digits` is 6 to 10, `period`
    /// the time step in seconds, `t0` the Unix time of step 0; `algorithm` is "sha1"
    /// (default), "sha256" or "sha512". Secrets shorter than 128 bits raise `ValueError`
    /// unless `allow_short_secret=True` (for old 80-bit secrets). The object is exportable
    /// (`provisioning_uri`) only while `key` is.
    #[new]
    #[pyo3(signature = (
        key, *, digits = 6, period = 30, algorithm = "sha1", t0 = 0, allow_short_secret = false
    ))]
    fn new(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        digits: i64,
        period: i64,
        algorithm: &str,
        t0: i64,
        allow_short_secret: bool,
    ) -> Result<Self> {
        let digits = parse_digits(digits)?;
        let alg = parse_otp_algorithm(algorithm)?;
        let clock = TimeStep::new(period, t0)?;
        let cell = cell_from_secret_key(key, alg, allow_short_secret, |otp, exportable| {
            Totp::cell_of(py, otp, digits, &clock, exportable)
        })?;
        Ok(Totp {
            cell,
            digits,
            clock,
        })
    }

    /// TOTP over a base32 secret (upper or lower case, padding optional, whitespace
    /// ignored) read from `buf` where it is and decoded straight into a guarded region.
    /// When `wipe` is true and `buf` is writable (a `bytearray`), it is zeroed afterwards,
    /// also when decoding fails. `str` is refused: it cannot be wiped.
    #[staticmethod]
    #[pyo3(signature = (
        buf, *, wipe = true, digits = 6, period = 30, algorithm = "sha1", t0 = 0,
        allow_short_secret = false, exportable = true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn from_base32(
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        wipe: bool,
        digits: i64,
        period: i64,
        algorithm: &str,
        t0: i64,
        allow_short_secret: bool,
        exportable: bool,
    ) -> Result<Self> {
        let digits = parse_digits(digits)?;
        let alg = parse_otp_algorithm(algorithm)?;
        let otp = key_from_base32(py, buf, wipe, alg, allow_short_secret)?;
        Totp::wrap(py, otp, digits, period, t0, exportable)
    }

    /// TOTP from an `otpauth://totp/...` URI in `buf` (algorithm, digits and period from
    /// the URI, else the defaults), its secret decoded straight into a guarded region.
    /// When `wipe` is true and `buf` is writable, it is zeroed afterwards, also on failure.
    /// `str` is refused: it cannot be wiped.
    #[staticmethod]
    #[pyo3(signature = (buf, *, wipe = true, allow_short_secret = false, exportable = true))]
    fn from_uri(
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        wipe: bool,
        allow_short_secret: bool,
        exportable: bool,
    ) -> Result<Self> {
        let loaded = key_from_uri(py, buf, wipe, uri::OtpKind::Totp, allow_short_secret)?;
        let period = i64::try_from(loaded.period.unwrap_or(30))
            .map_err(|_| Error::Value("invalid otpauth URI: period out of range".into()))?;
        Totp::wrap(py, loaded.key, loaded.digits, period, 0, exportable)
    }

    /// The time step (counter) of `timestamp` (seconds since the epoch, `int` or `float`):
    /// `(timestamp - t0) // period`.
    fn counter(&self, timestamp: &Bound<'_, PyAny>) -> Result<u64> {
        self.step_at(Some(timestamp))
    }

    /// The code at `timestamp` (seconds since the epoch, `int` or `float`).
    fn at(&self, py: Python<'_>, timestamp: &Bound<'_, PyAny>) -> Result<String> {
        let step = self.step_at(Some(timestamp))?;
        let code = self
            .cell
            .with_key(py, 0, |k| Ok(k.code(step, self.digits)?))?;
        Ok(self.digits.format(code))
    }

    /// The code now (system clock).
    fn now(&self, py: Python<'_>) -> Result<String> {
        let step = self.step_at(None)?;
        let code = self
            .cell
            .with_key(py, 0, |k| Ok(k.code(step, self.digits)?))?;
        Ok(self.digits.format(code))
    }

    /// Verify `code` at `at` (default: now) within `past` steps before and `future` steps
    /// after (each at most 1000); returns the time step (counter) that matched.
    ///
    /// Every candidate in the window is computed and compared in constant time, without an
    /// early exit. A step `<= last_counter` is refused: store the returned counter and pass
    /// it back as `last_counter` next time, and a code can never be used twice
    /// (`keycell.otp.TotpVerifier` does this for you). Raises `InvalidCode` for a wrong,
    /// expired or replayed code, `ValueError` when `code` is not exactly `digits` ASCII
    /// digits.
    #[pyo3(
        signature = (code, *, at = None, past = IntArg(Some(1)), future = IntArg(Some(1)), last_counter = None),
        text_signature = "($self, code, *, at=None, past=1, future=1, last_counter=None)"
    )]
    fn verify(
        &self,
        py: Python<'_>,
        code: &Bound<'_, PyAny>,
        at: Option<&Bound<'_, PyAny>>,
        past: IntArg,
        future: IntArg,
        last_counter: Option<IntArg>,
    ) -> Result<u64> {
        let past = window(past, "past")?;
        let future = window(future, "future")?;
        let floor = last_counter
            .map(|c| parse_u64(c, "last_counter"))
            .transpose()?;
        let code = parse_code(code, self.digits)?;
        let step = self.step_at(at)?;
        let span = (step.saturating_sub(past), step.saturating_add(future));
        verify_in_window(py, &self.cell, code, self.digits, span, floor)
    }

    /// The number of digits of a code.
    #[getter]
    fn digits(&self) -> u32 {
        self.digits.get()
    }

    /// The time step in seconds.
    #[getter]
    fn period(&self) -> u64 {
        self.clock.period()
    }

    /// The Unix time of step 0.
    #[getter]
    fn t0(&self) -> i64 {
        self.clock.t0()
    }

    /// The HMAC hash: "sha1", "sha256" or "sha512".
    #[getter]
    fn algorithm(&self, py: Python<'_>) -> Result<&'static str> {
        self.cell.with_key(py, 0, |k| Ok(k.algorithm().name()))
    }

    /// An `otpauth://totp/...` URI for authenticator apps (the secret as unpadded base32;
    /// `algorithm`, `digits` and `period` only when not the defaults). Raises
    /// `KeyNotExportableError` unless the object is exportable: the URI is the secret.
    #[pyo3(signature = (account, *, issuer = None))]
    fn provisioning_uri<'py>(
        &self,
        py: Python<'py>,
        account: &str,
        issuer: Option<&str>,
    ) -> Result<Bound<'py, PyString>> {
        let what = uri::Provisioned::Totp {
            period: self.clock.period(),
        };
        provisioning_uri(py, &self.cell, what, account, issuer, self.digits)
    }
}
