//! The agent's per-key policy: which uids may use which key for which operations, for how
//! long, how often. Parsed from JSON ([`super::json`]); the format is in `docs/agent.md`.
//!
//! Fail closed: an unknown member, a wrong type or an out-of-range value refuses the whole
//! file (a typo such as `"max_use"` must not silently drop a limit), and once a policy is
//! given, a key with no rule of its own and no `"default"` rule cannot be used at all.
//!
//! Use counts, rate windows and lifetimes are kept per key name in [`Usage`], by the server,
//! for the agent's whole life: reloading the store or the policy does not reset them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::json::{self, Value};

/// The format version this agent reads (`"keycell_policy": 1`).
pub const VERSION: i64 = 1;
/// Largest `rate.count` (the rate window keeps one timestamp per use).
pub const MAX_RATE_COUNT: i64 = 100_000;

/// An operation a rule can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    /// Ed25519 signing (`SSH_AGENTC_SIGN_REQUEST`); also decides whether the key is listed
    /// by `REQUEST_IDENTITIES`.
    Sign,
    /// `hmac@keycell`.
    Hmac,
    /// `verify-hmac@keycell`.
    VerifyHmac,
}

impl Operation {
    /// The name in policy files, logs and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Sign => "sign",
            Operation::Hmac => "hmac",
            Operation::VerifyHmac => "verify-hmac",
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "sign" => Some(Operation::Sign),
            "hmac" => Some(Operation::Hmac),
            "verify-hmac" => Some(Operation::VerifyHmac),
            _ => None,
        }
    }
}

/// At most `count` uses in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// The limits on one key. `None` means "no limit of this kind".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    /// The uids that may use the key (they must also be allowed to connect).
    pub uids: Option<Vec<u32>>,
    /// The operations allowed.
    pub operations: Option<Vec<Operation>>,
    /// How long after the agent started the key may be used.
    pub lifetime: Option<Duration>,
    /// How many uses in the agent's life.
    pub max_uses: Option<u64>,
    /// How many uses per time window.
    pub rate: Option<Rate>,
}

/// A whole policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Rules by key name.
    pub keys: BTreeMap<String, Rule>,
    /// The rule of keys not named in `keys`; `None`: such keys cannot be used.
    pub default: Option<Rule>,
    /// The policy's `"serial"` (0 without one): a reload must not go back
    /// ([`Policy::may_follow`]).
    pub serial: u64,
}

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(msg.into()))
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a [(String, Value)], PolicyError> {
    match v {
        Value::Object(m) => Ok(m),
        other => err(format!(
            "{what} must be an object, not {}",
            other.type_name()
        )),
    }
}

fn int(v: &Value, what: &str, min: i64, max: i64) -> Result<i64, PolicyError> {
    match v {
        Value::Int(n) if (min..=max).contains(n) => Ok(*n),
        Value::Int(_) => err(format!("{what} must be between {min} and {max}")),
        other => err(format!(
            "{what} must be an integer, not {}",
            other.type_name()
        )),
    }
}

fn array<'a>(v: &'a Value, what: &str) -> Result<&'a [Value], PolicyError> {
    match v {
        Value::Array(a) => Ok(a),
        other => err(format!(
            "{what} must be an array, not {}",
            other.type_name()
        )),
    }
}

const MAX_SECONDS: i64 = 100 * 365 * 24 * 3600;

fn parse_rule(v: &Value, what: &str) -> Result<Rule, PolicyError> {
    let mut rule = Rule::default();
    for (k, v) in object(v, what)? {
        let field = format!("{what}.{k}");
        match k.as_str() {
            "uids" => {
                let mut uids = Vec::new();
                for u in array(v, &field)? {
                    uids.push(int(u, &field, 0, i64::from(u32::MAX))? as u32);
                }
                rule.uids = Some(uids);
            }
            "operations" => {
                let mut ops = Vec::new();
                for o in array(v, &field)? {
                    let Value::Str(name) = o else {
                        return err(format!("{field} must list operation names"));
                    };
                    let op = Operation::from_name(name).ok_or_else(|| {
                        PolicyError(format!(
                            "{field}: unknown operation {name:?} (expected sign, hmac, verify-hmac)"
                        ))
                    })?;
                    ops.push(op);
                }
                rule.operations = Some(ops);
            }
            "lifetime_seconds" => {
                rule.lifetime = Some(Duration::from_secs(int(v, &field, 0, MAX_SECONDS)? as u64))
            }
            "max_uses" => rule.max_uses = Some(int(v, &field, 0, i64::MAX)? as u64),
            "rate" => {
                let mut count = None;
                let mut per = None;
                for (rk, rv) in object(v, &field)? {
                    let rf = format!("{field}.{rk}");
                    match rk.as_str() {
                        "count" => count = Some(int(rv, &rf, 1, MAX_RATE_COUNT)? as u32),
                        "per_seconds" => {
                            per = Some(Duration::from_secs(int(rv, &rf, 1, MAX_SECONDS)? as u64))
                        }
                        _ => return err(format!("unknown member {rf}")),
                    }
                }
                match (count, per) {
                    (Some(count), Some(per)) => rule.rate = Some(Rate { count, per }),
                    _ => return err(format!("{field} needs both count and per_seconds")),
                }
            }
            _ => return err(format!("unknown member {field}")),
        }
    }
    Ok(rule)
}

impl Policy {
    /// Parse a policy file (JSON; see `docs/agent.md`).
    pub fn parse(text: &[u8]) -> Result<Policy, PolicyError> {
        let doc = json::parse(text).map_err(|e| PolicyError(format!("not valid JSON: {e}")))?;
        let mut policy = Policy::default();
        let mut version = None;
        for (k, v) in object(&doc, "the policy")? {
            match k.as_str() {
                "keycell_policy" => version = Some(int(v, "keycell_policy", 0, i64::MAX)?),
                "keys" => {
                    for (name, rule) in object(v, "keys")? {
                        let r = parse_rule(rule, &format!("keys[{name:?}]"))?;
                        policy.keys.insert(name.clone(), r);
                    }
                }
                "default" => policy.default = Some(parse_rule(v, "default")?),
                "serial" => policy.serial = int(v, "serial", 0, i64::MAX)? as u64,
                _ => return err(format!("unknown member {k:?}")),
            }
        }
        match version {
            Some(VERSION) => Ok(policy),
            Some(v) => err(format!(
                "keycell_policy {v} is not supported (this agent reads version {VERSION})"
            )),
            None => err("the policy has no \"keycell_policy\": 1 member"),
        }
    }

    /// Whether this policy may replace `loaded`: its serial is greater, or it is the same
    /// policy again (a reload of an unchanged file). A policy without a serial counts as
    /// serial 0, so two different policies without one do not replace each other either:
    /// an older or equal serial with other rules is refused, and a genuine but older
    /// signed policy cannot roll permissions back. `Err` says why.
    pub fn may_follow(&self, loaded: &Policy) -> Result<(), String> {
        if self.serial > loaded.serial || self == loaded {
            return Ok(());
        }
        Err(format!(
            "serial {} is not greater than the loaded policy's serial {}",
            self.serial, loaded.serial
        ))
    }

    /// The rule that applies to key `name`.
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.keys.get(name).or(self.default.as_ref())
    }
}

/// The use record of one key (see the module docs).
#[derive(Debug, Clone)]
pub struct Usage {
    since: Instant,
    uses: u64,
    window: VecDeque<Instant>,
}

impl Usage {
    /// A record starting now.
    pub fn new(now: Instant) -> Self {
        Usage {
            since: now,
            uses: 0,
            window: VecDeque::new(),
        }
    }

    /// Allowed uses so far.
    pub fn uses(&self) -> u64 {
        self.uses
    }
}

/// Every key's [`Usage`], by name, from the agent's start (reloads keep them).
#[derive(Debug)]
pub struct Usages {
    started: Instant,
    by_key: Mutex<HashMap<String, Usage>>,
}

impl Usages {
    /// An empty book; keys first used later count their lifetime from `started`.
    pub fn new(started: Instant) -> Self {
        Usages {
            started,
            by_key: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Usage>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`decide`] one use of key `name` under `rule`, counting it when allowed.
    pub fn decide(
        &self,
        name: &str,
        rule: &Rule,
        op: Operation,
        uid: u32,
    ) -> Result<(), &'static str> {
        let now = Instant::now();
        let mut book = self.lock();
        let u = book
            .entry(name.to_owned())
            .or_insert_with(|| Usage::new(self.started));
        decide(rule, op, uid, u, now)
    }

    /// [`permitted`]: whether key `name` may be used now (no use counted).
    pub fn permitted(&self, name: &str, rule: &Rule, op: Operation, uid: u32) -> bool {
        let book = self.lock();
        let fresh;
        let u = match book.get(name) {
            Some(u) => u,
            None => {
                fresh = Usage::new(self.started);
                &fresh
            }
        };
        permitted(rule, op, uid, u, Instant::now()).is_ok()
    }
}

/// Whether `uid` may use a key under `rule` for `op` at `now`, without counting a use
/// (what `REQUEST_IDENTITIES` asks). `Err` names the limit that refused it.
pub fn permitted(
    rule: &Rule,
    op: Operation,
    uid: u32,
    usage: &Usage,
    now: Instant,
) -> Result<(), &'static str> {
    if let Some(uids) = &rule.uids {
        if !uids.contains(&uid) {
            return Err("uid not allowed for this key");
        }
    }
    if let Some(ops) = &rule.operations {
        if !ops.contains(&op) {
            return Err("operation not allowed for this key");
        }
    }
    if let Some(life) = rule.lifetime {
        if now.saturating_duration_since(usage.since) >= life {
            return Err("key lifetime expired");
        }
    }
    if let Some(max) = rule.max_uses {
        if usage.uses >= max {
            return Err("maximum number of uses reached");
        }
    }
    Ok(())
}

/// Decide one use and, when allowed, count it (uses and the rate window).
pub fn decide(
    rule: &Rule,
    op: Operation,
    uid: u32,
    usage: &mut Usage,
    now: Instant,
) -> Result<(), &'static str> {
    permitted(rule, op, uid, usage, now)?;
    if let Some(rate) = rule.rate {
        while let Some(&t) = usage.window.front() {
            if now.saturating_duration_since(t) >= rate.per {
                usage.window.pop_front();
            } else {
                break;
            }
        }
        if usage.window.len() >= rate.count as usize {
            return Err("rate limit reached");
        }
        usage.window.push_back(now);
    }
    usage.uses = usage.uses.saturating_add(1);
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_policy_without_a_serial_cannot_replace_another() {
        let p = |text: &str| Policy::parse(text.as_bytes()).expect("policy");
        let a = p(r#"{"keycell_policy": 1, "default": {}}"#);
        let b = p(r#"{"keycell_policy": 1, "keys": {}}"#);
        // Both count as serial 0: the older genuine one cannot come back, nor go forward.
        assert!(b.may_follow(&a).is_err());
        assert!(a.may_follow(&b).is_err());
        // The same policy again (an unchanged file) and a greater serial are taken.
        assert!(a.may_follow(&a).is_ok());
        let c = p(r#"{"keycell_policy": 1, "serial": 1, "keys": {}}"#);
        assert!(c.may_follow(&a).is_ok());
        assert!(a.may_follow(&c).is_err());
    }

    use super::*;

    const DOC: &str = r#"{
        "keycell_policy": 1,
        "keys": {
            "deploy": {"uids": [1000], "operations": ["sign"], "max_uses": 2},
            "ci": {"lifetime_seconds": 60, "rate": {"count": 2, "per_seconds": 10}}
        },
        "default": {"operations": ["hmac", "verify-hmac"]}
    }"#;

    #[test]
    fn parses() {
        let p = Policy::parse(DOC.as_bytes()).expect("policy");
        let d = p.rule("deploy").expect("deploy");
        assert_eq!(d.uids, Some(vec![1000]));
        assert_eq!(d.operations, Some(vec![Operation::Sign]));
        assert_eq!(d.max_uses, Some(2));
        let c = p.rule("ci").expect("ci");
        assert_eq!(c.lifetime, Some(Duration::from_secs(60)));
        assert_eq!(
            c.rate,
            Some(Rate {
                count: 2,
                per: Duration::from_secs(10)
            })
        );
        assert_eq!(
            p.rule("other").expect("default").operations,
            Some(vec![Operation::Hmac, Operation::VerifyHmac])
        );
    }

    #[test]
    fn refuses_unknown_and_wrong() {
        for bad in [
            r#"{"keys": {}}"#,
            r#"{"keycell_policy": 2}"#,
            r#"{"keycell_policy": 1, "extra": 1}"#,
            r#"{"keycell_policy": 1, "keys": {"a": {"max_use": 1}}}"#,
            r#"{"keycell_policy": 1, "keys": {"a": {"uids": [-1]}}}"#,
            r#"{"keycell_policy": 1, "keys": {"a": {"uids": "0"}}}"#,
            r#"{"keycell_policy": 1, "keys": {"a": {"operations": ["delete"]}}}"#,
            r#"{"keycell_policy": 1, "keys": {"a": {"rate": {"count": 1}}}}"#,
            r#"{"keycell_policy": 1, "keys": {"a": {"rate": {"count": 0, "per_seconds": 1}}}}"#,
            r#"[]"#,
        ] {
            assert!(Policy::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let p = Policy::parse(br#"{"keycell_policy": 1}"#).expect("empty");
        assert!(p.rule("any").is_none());
    }

    #[test]
    fn limits() {
        let p = Policy::parse(DOC.as_bytes()).expect("policy");
        let t0 = Instant::now();
        let deploy = p.rule("deploy").expect("rule");
        let mut u = Usage::new(t0);
        assert!(decide(deploy, Operation::Sign, 0, &mut u, t0).is_err());
        assert!(decide(deploy, Operation::Hmac, 1000, &mut u, t0).is_err());
        assert!(decide(deploy, Operation::Sign, 1000, &mut u, t0).is_ok());
        assert!(decide(deploy, Operation::Sign, 1000, &mut u, t0).is_ok());
        assert_eq!(
            decide(deploy, Operation::Sign, 1000, &mut u, t0),
            Err("maximum number of uses reached")
        );
        let ci = p.rule("ci").expect("rule");
        let mut u = Usage::new(t0);
        assert!(decide(ci, Operation::Sign, 5, &mut u, t0).is_ok());
        assert!(decide(ci, Operation::Sign, 5, &mut u, t0).is_ok());
        assert_eq!(
            decide(ci, Operation::Sign, 5, &mut u, t0),
            Err("rate limit reached")
        );
        let later = t0 + Duration::from_secs(10);
        assert!(decide(ci, Operation::Sign, 5, &mut u, later).is_ok());
        let expired = t0 + Duration::from_secs(60);
        assert_eq!(
            decide(ci, Operation::Sign, 5, &mut u, expired),
            Err("key lifetime expired")
        );
    }
}
