//! Plans /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow from package data, without running
//! adduser or systemd-sysusers.
//!
//! Rules:
//! - Sources, in order of precedence for a name's attributes (home, shell, GECOS, primary group): Debian's
//!   static table (base-passwd's `passwd.master`/`group.master`), the config's login users, the
//!   packages' postinsts ([`MaintainerFacts`]), then sysusers.d files. That is what a Debian system
//!   ends up with: dpkg runs the postinst, and systemd-sysusers later skips accounts that exist. Within
//!   one kind, sources are taken in order of their names (package name, sysusers source).
//! - Static ids win: an id written in any source is used. The same name with two different explicit ids
//!   is an error naming both sources; two names with one explicit id is an error too.
//! - A user whose primary group is its own (adduser `--group`, sysusers `u NAME -`, useradd's default,
//!   or `--ingroup NAME` of a group of the same name) gets that group, with the same id where free.
//! - Every other id is dynamic: taken from 100..=999 starting at a slot chosen by the SHA-256 of the
//!   NAME and probing upwards (wrapping) past taken ids, in sorted-name order; users sharing the id with
//!   their own group need it free in both tables. So adding an unrelated package does not renumber
//!   existing accounts, and files kept in the persistent /var keep their owners — unless the new name
//!   lands on an occupied slot before an existing name in sorted order (a hash collision), which only
//!   moves accounts whose probe chains meet.
//! - Groups only named in memberships (`adduser USER GROUP`, sysusers `m`, a login user's groups) and
//!   not created by anything are created as dynamic system groups. A membership of an unknown user, or
//!   a primary group nothing creates, is an error.
//! - Login users come from the config with uids in 1000..=60000, a primary group of their own name with
//!   gid = uid, home `/home/NAME`; they must not share a name or id with anything else.
//! - Shadow entries are `name:*:1:0:99999:7:::` for every account: no passwords. `*` rather than `!`,
//!   because dropbear treats `!` as a locked account and refuses key logins too.
//! - sysusers `r` ranges are not used: the dynamic range is always 100..=999.
//!
//! Output is sorted by id (then name) and fully determined by the inputs.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::maintainer::{MaintainerFacts, PrimaryGroup, Sysusers};

/// The first and last dynamic system id (Debian's FIRST_SYSTEM_UID..LAST_SYSTEM_UID).
const DYNAMIC: std::ops::RangeInclusive<u32> = 100..=999;
/// Login user ids allowed in the config.
const LOGIN: std::ops::RangeInclusive<u32> = 1000..=60000;

/// base-passwd's master files (`/usr/share/base-passwd/passwd.master` and `group.master`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasePasswd {
    /// Text of `passwd.master`.
    pub passwd_master: String,
    /// Text of `group.master`.
    pub group_master: String,
}

/// A login user from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUser {
    /// Login name.
    pub name: String,
    /// Uid in 1000..=60000; also the gid of the user's own group.
    pub uid: u32,
    /// Supplementary groups.
    pub groups: Vec<String>,
    /// Login shell.
    pub shell: String,
}

/// Everything the account plan is made from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountInputs {
    /// base-passwd's master files, when the package is in the closure.
    pub base_passwd: Option<BasePasswd>,
    /// Parsed sysusers.d files by source (e.g. `systemd:/usr/lib/sysusers.d/basic.conf`).
    pub sysusers: Vec<(String, Vec<Sysusers>)>,
    /// Each package's postinst facts, by package name.
    pub postinst: Vec<(String, MaintainerFacts)>,
    /// The config's login users.
    pub login_users: Vec<LoginUser>,
}

/// A planned passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// GECOS field.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// A planned group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Name.
    pub name: String,
    /// Gid.
    pub gid: u32,
    /// Supplementary members, sorted.
    pub members: Vec<String>,
}

/// The planned account databases, as file contents and as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// /etc/passwd.
    pub passwd: String,
    /// /etc/group.
    pub group: String,
    /// /etc/shadow.
    pub shadow: String,
    /// /etc/gshadow.
    pub gshadow: String,
    /// Users sorted by uid.
    pub users: Vec<Account>,
    /// Groups sorted by gid.
    pub groups: Vec<Group>,
}

/// How a user's primary group is given.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Primary {
    Own,
    Name(String),
    Id(u32),
}

struct UserPlan {
    uid: Option<(u32, String)>,
    primary: Primary,
    gecos: String,
    home: String,
    shell: String,
    source: String,
}

#[derive(Default)]
struct GroupPlan {
    gid: Option<(u32, String)>,
}

#[derive(Default)]
struct Plan {
    users: BTreeMap<String, UserPlan>,
    groups: BTreeMap<String, GroupPlan>,
    /// group → members, with the source of the first request (for errors).
    members: BTreeMap<String, BTreeMap<String, String>>,
    /// Login user names: packages may not create accounts with these names.
    login: BTreeSet<String>,
}

/// Plans the account databases; see the module documentation for the rules. Errors are one sentence
/// naming the account and the sources involved.
pub fn plan_accounts(input: &AccountInputs) -> Result<Accounts, String> {
    let mut plan = Plan::default();
    if let Some(bp) = &input.base_passwd {
        add_base_passwd(&mut plan, bp)?;
    }
    for u in &input.login_users {
        add_login_user(&mut plan, u)?;
    }
    // Sorted by source name, so the caller's order cannot change which attributes win.
    let mut postinst: Vec<_> = input.postinst.iter().collect();
    postinst.sort_by(|a, b| a.0.cmp(&b.0));
    for (package, facts) in postinst {
        add_postinst(&mut plan, package, facts)?;
    }
    let mut sysusers: Vec<_> = input.sysusers.iter().collect();
    sysusers.sort_by(|a, b| a.0.cmp(&b.0));
    for (source, entries) in sysusers {
        add_sysusers(&mut plan, source, entries)?;
    }
    assign(plan, &input.login_users)
}

fn add_user(
    plan: &mut Plan,
    name: &str,
    uid: Option<u32>,
    make: impl FnOnce() -> UserPlan,
) -> Result<(), String> {
    check_field("user name", name)?;
    let new = make();
    if plan.login.contains(name) {
        return Err(format!(
            "{} creates user {name}, which is a login user in the config; rename the login user",
            new.source
        ));
    }
    match plan.users.get_mut(name) {
        None => {
            plan.users.insert(
                name.to_string(),
                UserPlan {
                    uid: uid.map(|u| (u, new.source.clone())),
                    ..new
                },
            );
        }
        Some(old) => match (&old.uid, uid) {
            (Some((a, from)), Some(b)) if *a != b => {
                return Err(format!(
                    "user {name} has uid {a} in {from} but uid {b} in {}; make them agree",
                    new.source
                ))
            }
            (None, Some(b)) => old.uid = Some((b, new.source)),
            _ => {}
        },
    }
    Ok(())
}

fn add_group(plan: &mut Plan, name: &str, gid: Option<u32>, source: &str) -> Result<(), String> {
    check_field("group name", name)?;
    if plan.login.contains(name) {
        return Err(format!(
            "{source} creates group {name}, which is a login user's own group; rename the login user"
        ));
    }
    let g = plan.groups.entry(name.to_string()).or_default();
    match (&g.gid, gid) {
        (Some((a, from)), Some(b)) if *a != b => Err(format!(
            "group {name} has gid {a} in {from} but gid {b} in {source}; make them agree"
        )),
        (None, Some(b)) => {
            g.gid = Some((b, source.to_string()));
            Ok(())
        }
        _ => Ok(()),
    }
}

fn add_member(plan: &mut Plan, user: &str, group: &str, source: &str) {
    plan.members
        .entry(group.to_string())
        .or_default()
        .entry(user.to_string())
        .or_insert_with(|| source.to_string());
}

fn add_base_passwd(plan: &mut Plan, bp: &BasePasswd) -> Result<(), String> {
    let source = "base-passwd passwd.master";
    for (i, line) in bp.passwd_master.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, gecos, home, shell] = f.as_slice() else {
            return Err(format!("{source} line {}: expected 7 fields", i + 1));
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{source} line {}: {s:?} is not a number", i + 1))
        };
        let (uid, gid) = (num(uid)?, num(gid)?);
        add_user(plan, name, Some(uid), || UserPlan {
            uid: None,
            primary: Primary::Id(gid),
            gecos: gecos.to_string(),
            home: home.to_string(),
            shell: shell.to_string(),
            source: source.into(),
        })?;
    }
    let source = "base-passwd group.master";
    for (i, line) in bp.group_master.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        let [name, _, gid, members] = f.as_slice() else {
            return Err(format!("{source} line {}: expected 4 fields", i + 1));
        };
        let gid = gid
            .parse::<u32>()
            .map_err(|_| format!("{source} line {}: {gid:?} is not a number", i + 1))?;
        add_group(plan, name, Some(gid), source)?;
        for m in members.split(',').filter(|m| !m.is_empty()) {
            add_member(plan, m, name, source);
        }
    }
    Ok(())
}

fn add_login_user(plan: &mut Plan, u: &LoginUser) -> Result<(), String> {
    if !LOGIN.contains(&u.uid) {
        return Err(format!(
            "login user {} has uid {}; login uids must be in {}..={}",
            u.name,
            u.uid,
            LOGIN.start(),
            LOGIN.end()
        ));
    }
    let source = format!("the config's user {}", u.name);
    if plan.users.contains_key(&u.name) || plan.groups.contains_key(&u.name) {
        return Err(format!(
            "login user {} has the name of a system account; choose another name",
            u.name
        ));
    }
    check_field("shell", &u.shell)?;
    add_user(plan, &u.name, Some(u.uid), || UserPlan {
        uid: None,
        primary: Primary::Own,
        gecos: String::new(),
        home: format!("/home/{}", u.name),
        shell: u.shell.clone(),
        source: source.clone(),
    })?;
    add_group(plan, &u.name, Some(u.uid), &source)?;
    plan.login.insert(u.name.clone());
    for g in &u.groups {
        add_member(plan, &u.name, g, &source);
    }
    Ok(())
}

fn add_postinst(plan: &mut Plan, package: &str, f: &MaintainerFacts) -> Result<(), String> {
    let source = format!("{package}'s postinst");
    for g in &f.groups {
        add_group(plan, &g.name, g.gid, &source)?;
    }
    for u in &f.users {
        add_user(plan, &u.name, u.uid, || UserPlan {
            uid: None,
            primary: match &u.group {
                Some(g) => Primary::Name(g.clone()),
                None => Primary::Own,
            },
            gecos: u.gecos.clone(),
            home: u.home.clone(),
            shell: u.shell.clone(),
            source: source.clone(),
        })?;
    }
    for (user, group) in &f.members {
        add_member(plan, user, group, &source);
    }
    Ok(())
}

fn add_sysusers(plan: &mut Plan, source: &str, entries: &[Sysusers]) -> Result<(), String> {
    for e in entries {
        match e {
            Sysusers::User(u) => add_user(plan, &u.name, u.uid, || UserPlan {
                uid: None,
                primary: match &u.group {
                    None => Primary::Own,
                    Some(PrimaryGroup::Id(n)) => Primary::Id(*n),
                    Some(PrimaryGroup::Name(g)) => Primary::Name(g.clone()),
                },
                gecos: u.gecos.clone(),
                home: u.home.clone(),
                shell: u.shell.clone(),
                source: source.to_string(),
            })?,
            Sysusers::Group { name, gid } => add_group(plan, name, *gid, source)?,
            Sysusers::Member { user, group } => add_member(plan, user, group, source),
            Sysusers::Range { .. } => {}
        }
    }
    Ok(())
}

/// Passwd and group fields are colon- and newline-separated.
fn check_field(what: &str, value: &str) -> Result<(), String> {
    if value.contains([':', '\n', '\r'])
        || (what.ends_with("name") && (value.is_empty() || value.contains([',', ' '])))
    {
        return Err(format!(
            "{what} {value:?} cannot be written to passwd/group (colon, comma, space or newline)"
        ));
    }
    Ok(())
}

/// Records `name`'s id, refusing an id another name of the same kind already has.
fn claim(
    taken: &mut BTreeMap<u32, String>,
    ids: &mut BTreeMap<String, u32>,
    kind: &str,
    name: &str,
    id: u32,
    source: &str,
) -> Result<(), String> {
    let who = if source.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {name} ({source})")
    };
    if let Some(other) = taken.get(&id) {
        return Err(format!(
            "{who} and {other} both have id {id}; give one of them another id"
        ));
    }
    taken.insert(id, who);
    ids.insert(name.to_string(), id);
    Ok(())
}

/// The first dynamic id to try for `name`.
fn slot(name: &str) -> u32 {
    let digest = Sha256::digest(name.as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    DYNAMIC.start() + n % (DYNAMIC.end() - DYNAMIC.start() + 1)
}

/// Probes from `name`'s slot for an id free in every table of `taken`.
fn probe(name: &str, taken: &[&BTreeSet<u32>]) -> Result<u32, String> {
    let span = DYNAMIC.end() - DYNAMIC.start() + 1;
    let start = slot(name) - DYNAMIC.start();
    (0..span)
        .map(|i| DYNAMIC.start() + (start + i) % span)
        .find(|id| taken.iter().all(|t| !t.contains(id)))
        .ok_or(format!(
            "no free system id in {}..={} for {name}; too many system accounts",
            DYNAMIC.start(),
            DYNAMIC.end()
        ))
}

fn assign(mut plan: Plan, login: &[LoginUser]) -> Result<Accounts, String> {
    // Groups that memberships name but nothing creates.
    for g in plan.members.keys() {
        if !plan.groups.contains_key(g) {
            check_field("group name", g)?;
            plan.groups.insert(g.clone(), GroupPlan::default());
        }
    }
    // Own groups, and user/group pairs sharing a name (`addgroup x; adduser --ingroup x x`).
    let mut shares_id = BTreeSet::new();
    for (name, u) in &plan.users {
        let own = match &u.primary {
            Primary::Own => true,
            Primary::Name(g) => g == name,
            Primary::Id(_) => false,
        };
        if own {
            plan.groups.entry(name.clone()).or_default();
            shares_id.insert(name.clone());
        }
    }
    let mut uids: BTreeMap<String, u32> = BTreeMap::new();
    let mut gids: BTreeMap<String, u32> = BTreeMap::new();
    let mut taken_u: BTreeMap<u32, String> = BTreeMap::new();
    let mut taken_g: BTreeMap<u32, String> = BTreeMap::new();
    for (name, u) in &plan.users {
        if let Some((id, source)) = &u.uid {
            claim(&mut taken_u, &mut uids, "user", name, *id, source)?;
        }
    }
    for (name, g) in &plan.groups {
        if let Some((id, source)) = &g.gid {
            claim(&mut taken_g, &mut gids, "group", name, *id, source)?;
        }
    }
    // Own groups of users with a static uid: the same id when it is free.
    for name in &shares_id {
        if let (Some(&uid), false) = (uids.get(name), gids.contains_key(name)) {
            if !taken_g.contains_key(&uid) {
                claim(&mut taken_g, &mut gids, "group", name, uid, "")?;
            }
        }
    }
    // Dynamic ids in sorted-name order; users first, sharing with their own group when both are free.
    for name in plan.users.keys() {
        if uids.contains_key(name) {
            continue;
        }
        let joint = shares_id.contains(name) && !gids.contains_key(name);
        let tu: BTreeSet<u32> = taken_u.keys().copied().collect();
        let tg: BTreeSet<u32> = taken_g.keys().copied().collect();
        let id = if joint {
            probe(name, &[&tu, &tg])?
        } else {
            probe(name, &[&tu])?
        };
        claim(&mut taken_u, &mut uids, "user", name, id, "")?;
        if joint {
            claim(&mut taken_g, &mut gids, "group", name, id, "")?;
        }
    }
    for name in plan.groups.keys() {
        if gids.contains_key(name) {
            continue;
        }
        let tg: BTreeSet<u32> = taken_g.keys().copied().collect();
        let id = match uids
            .get(name)
            .filter(|u| shares_id.contains(name) && !tg.contains(u))
        {
            Some(&u) => u,
            None => probe(name, &[&tg])?,
        };
        claim(&mut taken_g, &mut gids, "group", name, id, "")?;
    }

    let mut users = Vec::new();
    for (name, u) in &plan.users {
        let gid = match &u.primary {
            Primary::Own => gids.get(name).copied(),
            Primary::Name(g) => gids.get(g).copied(),
            Primary::Id(n) => taken_g.contains_key(n).then_some(*n),
        };
        let gid = gid.ok_or_else(|| {
            let want = match &u.primary {
                Primary::Name(g) => g.clone(),
                Primary::Id(n) => format!("gid {n}"),
                Primary::Own => name.clone(),
            };
            format!(
                "user {name} ({}) has primary group {want}, which nothing creates; add the group",
                u.source
            )
        })?;
        for (what, v) in [("GECOS", &u.gecos), ("home", &u.home), ("shell", &u.shell)] {
            check_field(what, v).map_err(|e| format!("user {name} ({}): {e}", u.source))?;
        }
        users.push(Account {
            name: name.clone(),
            uid: uids[name],
            gid,
            gecos: u.gecos.clone(),
            home: u.home.clone(),
            shell: u.shell.clone(),
        });
    }
    let mut groups = Vec::new();
    for name in plan.groups.keys() {
        let members = plan.members.get(name).cloned().unwrap_or_default();
        for (m, source) in &members {
            if !plan.users.contains_key(m) {
                return Err(format!(
                    "{source} adds user {m} to group {name}, but no user {m} exists; create the user or drop the membership"
                ));
            }
        }
        groups.push(Group {
            name: name.clone(),
            gid: gids[name],
            members: members.into_keys().collect(),
        });
    }
    // A login user's own group must really carry gid = uid (another group may have claimed it).
    for u in login {
        if gids.get(&u.name) != Some(&u.uid) {
            return Err(format!(
                "login user {}: gid {} is already taken by another group; choose another uid",
                u.name, u.uid
            ));
        }
    }
    users.sort_by(|a, b| (a.uid, &a.name).cmp(&(b.uid, &b.name)));
    groups.sort_by(|a, b| (a.gid, &a.name).cmp(&(b.gid, &b.name)));
    let mut a = Accounts {
        passwd: String::new(),
        group: String::new(),
        shadow: String::new(),
        gshadow: String::new(),
        users,
        groups,
    };
    for u in &a.users {
        a.passwd += &format!(
            "{}:x:{}:{}:{}:{}:{}\n",
            u.name, u.uid, u.gid, u.gecos, u.home, u.shell
        );
        a.shadow += &format!("{}:*:1:0:99999:7:::\n", u.name);
    }
    for g in &a.groups {
        let m = g.members.join(",");
        a.group += &format!("{}:x:{}:{m}\n", g.name, g.gid);
        a.gshadow += &format!("{}:*::{m}\n", g.name);
    }
    Ok(a)
}

#[cfg(test)]
mod tests;
