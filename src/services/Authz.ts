/**
 * Who may use the daemon's socket, as a pure function of the policy and the
 * caller's kernel-reported credentials.
 *
 * Roles are ordered: `read` < `run` < `admin`.
 * - `read`: version, health, list cells and jobs, job status, logs, events.
 * - `run`: also create cells, run jobs in its own cells, kill and remove
 *   its own jobs and cells.
 * - `admin`: everything, other users' jobs and cells included.
 *
 * Defaults: the daemon's own uid and root are `admin`, nobody else has a
 * role. `--allow-uid U[:ROLE]` and `--allow-group G[:ROLE]` grant more (role
 * `run` unless given). `--strict` ignores every grant and root: only the
 * daemon's uid is allowed.
 */
import type { Option } from "effect"
import { Role } from "../rpc/Middleware.js"

export { Role }
export const Roles: ReadonlyArray<Role> = Role.literals

const rank: Record<Role, number> = { read: 1, run: 2, admin: 3 }

export const atLeast = (role: Role, required: Role) => rank[role] >= rank[required]

export const higher = (a: Role | null, b: Role | null): Role | null =>
  a === null ? b : b === null ? a : rank[a] >= rank[b] ? a : b

export interface UidGrant {
  readonly uid: number
  /** How the operator named it (a user name or the number), for messages. */
  readonly label: string
  readonly role: Role
}

export interface GroupGrant {
  readonly gid: number
  readonly label: string
  readonly role: Role
}

export interface AuthzPolicy {
  /** The uid planterd runs as: always admin. */
  readonly daemonUid: number
  readonly uids: ReadonlyArray<UidGrant>
  readonly groups: ReadonlyArray<GroupGrant>
  /** Only the daemon's uid, whatever the grants say (root included). */
  readonly strict: boolean
}

export const defaultPolicy = (daemonUid: number): AuthzPolicy => ({ daemonUid, uids: [], groups: [], strict: false })

/** The caller as the kernel reports it at connect time. `groups` holds its primary gid and supplementary groups. */
export interface Peer {
  readonly uid: number
  readonly gid: number
  readonly pid: number | null
  readonly groups: ReadonlyArray<number>
}

/** The caller's role, or null when it has none. */
export const roleOf = (policy: AuthzPolicy, peer: Peer): Role | null => {
  if (peer.uid === policy.daemonUid) return "admin"
  if (policy.strict) return null
  if (peer.uid === 0) return "admin"
  let role: Role | null = null
  for (const grant of policy.uids) if (grant.uid === peer.uid) role = higher(role, grant.role)
  for (const grant of policy.groups) if (peer.groups.includes(grant.gid)) role = higher(role, grant.role)
  return role
}

/** What each request asks for: the role it needs and how a person names the action. */
export interface Action {
  /** The least role it needs; null: any peer whose credentials were read. */
  readonly role: Role | null
  readonly what: string
  /** Changes state: audited on success as well as on denial. */
  readonly changesState: boolean
}

/**
 * Every RPC's action. `Version` is answered to any peer (it says only the
 * daemon's and the protocol's versions): every client asks it first to
 * check the protocol, and a caller without a role should then be refused
 * for what it really asked, named.
 */
export const actions = {
  Version: { role: null, what: "ask the daemon's version", changesState: false },
  Health: { role: "read", what: "read the daemon's health", changesState: false },
  CellCreate: { role: "run", what: "create cells", changesState: true },
  CellList: { role: "read", what: "list cells", changesState: false },
  CellRemove: { role: "run", what: "remove cells", changesState: true },
  JobRun: { role: "run", what: "run jobs", changesState: true },
  JobStatus: { role: "read", what: "read job status", changesState: false },
  JobList: { role: "read", what: "list jobs", changesState: false },
  JobKill: { role: "run", what: "kill jobs", changesState: true },
  LogsRead: { role: "read", what: "read logs", changesState: false },
  LogsOpen: { role: "read", what: "read logs", changesState: false },
  LogsMarks: { role: "read", what: "read logs", changesState: false },
  EventsList: { role: "read", what: "read the events journal", changesState: false },
  // Not audited per call: one `run -i` sends many; the run itself is.
  JobStdin: { role: "run", what: "write to jobs' stdin", changesState: false },
  JobRemove: { role: "run", what: "remove jobs", changesState: true },
  JobPrune: { role: "run", what: "prune jobs", changesState: true },
  CellShow: { role: "read", what: "show cells", changesState: false },
  EventsFollow: { role: "read", what: "follow the events journal", changesState: false },
  DebugFibers: { role: "admin", what: "list the daemon's fibers", changesState: false }
} as const satisfies Record<string, Action>

export type ActionName = keyof typeof actions

export const actionOf = (tag: string): Action | undefined =>
  Object.prototype.hasOwnProperty.call(actions, tag) ? actions[tag as ActionName] : undefined

/** How a message names the caller: `uid 1001 (alice)`, or just `uid 1001`. */
export const describeUid = (uid: number, name: Option.Option<string> | string | null = null) => {
  const resolved = typeof name === "string" ? name : name === null || name._tag === "None" ? null : name.value
  return resolved === null ? `uid ${uid}` : `uid ${uid} (${resolved})`
}

export type Decision =
  | { readonly allowed: true; readonly role: Role | null }
  | { readonly allowed: false; readonly role: Role | null; readonly message: string }

/**
 * May `peer` do `action`? A denial's message names the uid, the action and
 * the flag that would allow it.
 */
export const decide = (
  policy: AuthzPolicy,
  peer: Peer,
  action: Action,
  options: { readonly who?: string } = {}
): Decision => {
  const role = roleOf(policy, peer)
  if (action.role === null || role !== null && atLeast(role, action.role)) return { allowed: true, role }
  const who = options.who ?? describeUid(peer.uid)
  const grant =
    `\`planterd --allow-uid ${peer.uid}:${action.role}\` (or --allow-group GROUP:${action.role} for one of its groups)`
  const message = policy.strict
    ? `${who} may not ${action.what}: planterd runs with --strict, which allows only uid ${policy.daemonUid}; restart it without --strict and with ${grant}`
    : role === null
    ? `${who} may not ${action.what}: it has no role on this daemon; allow it with ${grant}`
    : `${who} may not ${action.what}: its role is ${role} and this needs ${action.role}; allow it with ${grant}`
  return { allowed: false, role, message }
}

/**
 * May a caller with `role` act on (kill, remove, run in) something owned by
 * `ownerUid`? Admins may act on anything; others only on their own. A
 * record without an owner (made before ownership was recorded) belongs to
 * the daemon's user.
 */
export const mayTouch = (
  policy: AuthzPolicy,
  caller: { readonly uid: number; readonly role: Role | null },
  ownerUid: number | null
) => caller.role === "admin" || (ownerUid ?? policy.daemonUid) === caller.uid

/** The message for a caller that may not act on another user's cell or job. */
export const notOwnerMessage = (
  caller: { readonly uid: number; readonly name: string },
  what: string,
  target: string,
  ownerUid: number | null,
  policy: AuthzPolicy
) =>
  `${caller.name} may not ${what} ${target}: it belongs to uid ${
    ownerUid ?? policy.daemonUid
  }, and only its owner or an admin may; allow it with \`planterd --allow-uid ${caller.uid}:admin\``

/** The socket file's mode and group the policy needs: private unless others have a role. */
export type SocketAccess =
  | { readonly kind: "private"; readonly mode: 0o600 }
  | { readonly kind: "group"; readonly mode: 0o660; readonly gid: number; readonly label: string }
  | { readonly kind: "everyone"; readonly mode: 0o666 }

/**
 * Private (0600) when only the daemon's user (and root) may connect; 0660
 * with the group's ownership when exactly one group and no other uid is
 * allowed; otherwise 0666, the peer-credential check being the gate (a file
 * has one group, so two groups or another user cannot be let in by mode alone).
 */
export const socketAccess = (policy: AuthzPolicy): SocketAccess => {
  if (policy.strict) return { kind: "private", mode: 0o600 }
  const otherUids = policy.uids.filter((grant) => grant.uid !== policy.daemonUid && grant.uid !== 0)
  const gids = [...new Set(policy.groups.map((grant) => grant.gid))]
  if (otherUids.length === 0 && gids.length === 0) return { kind: "private", mode: 0o600 }
  if (otherUids.length === 0 && gids.length === 1) {
    return {
      kind: "group",
      mode: 0o660,
      gid: gids[0]!,
      label: policy.groups.find((grant) => grant.gid === gids[0])!.label
    }
  }
  return { kind: "everyone", mode: 0o666 }
}

/** Parses `NAME[:ROLE]`; the role defaults to `run`. */
export const parseGrant = (text: string): { readonly name: string; readonly role: Role } | string => {
  const colon = text.lastIndexOf(":")
  const name = colon < 0 ? text : text.slice(0, colon)
  const role = colon < 0 ? "run" : text.slice(colon + 1)
  if (name.length === 0) {
    return `${JSON.stringify(text)}: expected a name or number, optionally followed by :read, :run or :admin`
  }
  if (!(Roles as ReadonlyArray<string>).includes(role)) {
    return `${JSON.stringify(text)}: unknown role ${JSON.stringify(role)}: use read, run or admin`
  }
  return { name, role: role as Role }
}
