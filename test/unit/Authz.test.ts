import { describe, expect, it } from "@effect/vitest"
import type { AuthzPolicy, Peer } from "../../src/services/Authz.js"
import { actions, decide, defaultPolicy, mayTouch, parseGrant, roleOf, socketAccess } from "../../src/services/Authz.js"

const DAEMON = 1000
const peer = (uid: number, groups: ReadonlyArray<number> = [uid]): Peer => ({
  uid,
  gid: groups[0] ?? uid,
  pid: 42,
  groups
})
const policy = (overrides: Partial<AuthzPolicy> = {}): AuthzPolicy => ({ ...defaultPolicy(DAEMON), ...overrides })

const BUILDERS = 2001
const VIEWERS = 2002
const team = policy({
  groups: [{ gid: BUILDERS, label: "builders", role: "run" }, { gid: VIEWERS, label: "viewers", role: "read" }],
  uids: [{ uid: 3001, label: "ci", role: "run" }, { uid: 3002, label: "ops", role: "admin" }]
})

describe("Authz policy", () => {
  it("by default the daemon's uid and root are admin, nobody else has a role", () => {
    expect(roleOf(policy(), peer(DAEMON))).toBe("admin")
    expect(roleOf(policy(), peer(0))).toBe("admin")
    expect(roleOf(policy(), peer(1001))).toBeNull()
    expect(roleOf(policy(), peer(65534, [65534, 0]))).toBeNull() // group 0 is no grant by itself
  })

  it("grants by uid and by primary or supplementary group; the highest role wins", () => {
    expect(roleOf(team, peer(3001))).toBe("run")
    expect(roleOf(team, peer(3002))).toBe("admin")
    expect(roleOf(team, peer(5000, [5000, VIEWERS]))).toBe("read")
    expect(roleOf(team, peer(5000, [BUILDERS]))).toBe("run")
    expect(roleOf(team, peer(5000, [5000, VIEWERS, BUILDERS]))).toBe("run")
    expect(roleOf(team, peer(3001, [3001, VIEWERS]))).toBe("run")
    expect(roleOf(team, peer(5000, [5000]))).toBeNull()
  })

  it("--strict allows only the daemon's uid: grants and root are ignored", () => {
    const strict = { ...team, strict: true }
    expect(roleOf(strict, peer(DAEMON))).toBe("admin")
    expect(roleOf(strict, peer(0))).toBeNull()
    expect(roleOf(strict, peer(3002))).toBeNull()
    expect(roleOf(strict, peer(5000, [BUILDERS]))).toBeNull()
  })

  it("read may read, not run; run may run, not more than its own; admin may everything", () => {
    const viewer = peer(5000, [VIEWERS])
    for (const name of ["Version", "Health", "CellList", "JobList", "JobStatus", "LogsRead", "EventsList"] as const) {
      expect(decide(team, viewer, actions[name]).allowed).toBe(true)
    }
    for (const name of ["CellCreate", "CellRemove", "JobRun", "JobKill"] as const) {
      expect(decide(team, viewer, actions[name]).allowed).toBe(false)
      expect(decide(team, peer(3001), actions[name]).allowed).toBe(true)
    }
    // Any peer may ask the version (clients check the protocol first), nothing more.
    expect(decide(team, peer(5000), actions.Version).allowed).toBe(true)
    expect(decide(team, peer(5000), actions.Health).allowed).toBe(false)
    expect(mayTouch(team, { uid: 3001, role: "run" }, 3001)).toBe(true)
    expect(mayTouch(team, { uid: 3001, role: "run" }, 5000)).toBe(false)
    expect(mayTouch(team, { uid: 3002, role: "admin" }, 5000)).toBe(true)
    // A record without an owner is the daemon user's.
    expect(mayTouch(team, { uid: 3001, role: "run" }, null)).toBe(false)
    expect(mayTouch(team, { uid: DAEMON, role: "admin" }, null)).toBe(true)
  })

  it("a denial names the uid, the action and the flag that would allow it", () => {
    const none = decide(team, peer(5000), actions.JobRun, { who: "uid 5000 (eve)" })
    expect(none).toMatchObject({ allowed: false, role: null })
    if (none.allowed) throw new Error("allowed")
    expect(none.message).toContain("uid 5000 (eve) may not run jobs")
    expect(none.message).toContain("no role")
    expect(none.message).toContain("--allow-uid 5000:run")
    const low = decide(team, peer(5000, [VIEWERS]), actions.JobKill)
    if (low.allowed) throw new Error("allowed")
    expect(low.message).toContain("uid 5000 may not kill jobs: its role is read and this needs run")
    const strict = decide({ ...team, strict: true }, peer(3002), actions.CellList)
    if (strict.allowed) throw new Error("allowed")
    expect(strict.message).toContain("--strict")
    expect(strict.message).toContain(`only uid ${DAEMON}`)
  })

  it("the socket is 0600 unless others are allowed; 0660 for one group; 0666 for more, the peer check being the gate", () => {
    expect(socketAccess(policy())).toEqual({ kind: "private", mode: 0o600 })
    expect(
      socketAccess(
        policy({ uids: [{ uid: DAEMON, label: "me", role: "admin" }, { uid: 0, label: "root", role: "admin" }] })
      )
    )
      .toEqual({ kind: "private", mode: 0o600 })
    expect(socketAccess(policy({ groups: [{ gid: BUILDERS, label: "builders", role: "run" }] })))
      .toEqual({ kind: "group", mode: 0o660, gid: BUILDERS, label: "builders" })
    expect(socketAccess(team)).toEqual({ kind: "everyone", mode: 0o666 })
    expect(socketAccess({ ...team, strict: true })).toEqual({ kind: "private", mode: 0o600 })
  })

  it("parses NAME[:ROLE] with run as the default role", () => {
    expect(parseGrant("ci")).toEqual({ name: "ci", role: "run" })
    expect(parseGrant("1001:read")).toEqual({ name: "1001", role: "read" })
    expect(parseGrant("ops:admin")).toEqual({ name: "ops", role: "admin" })
    expect(parseGrant("ops:root")).toContain("unknown role")
    expect(parseGrant(":read")).toContain("expected a name")
  })
})
