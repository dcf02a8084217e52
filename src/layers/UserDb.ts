import { spawnSync } from "node:child_process"
import * as fs from "node:fs"

/**
 * Users and groups by name and number, for the policy flags (`--allow-uid
 * alice`, `--allow-group builders`) and for naming callers in messages.
 * `getent` first (it asks NSS: LDAP, sssd, …), then /etc/passwd and
 * /etc/group; macOS has no getent and answers from the files (local users)
 * or `id`.
 */
const getent = (database: "passwd" | "group", key: string): Array<string> | undefined => {
  try {
    const result = spawnSync("getent", [database, key], { encoding: "utf8", timeout: 5000 })
    if (result.status !== 0 || typeof result.stdout !== "string") return undefined
    const line = result.stdout.split("\n")[0]
    return line ? line.split(":") : undefined
  } catch {
    return undefined
  }
}

const fileEntry = (file: string, match: (fields: Array<string>) => boolean): Array<string> | undefined => {
  try {
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      if (line.startsWith("#") || line.trim() === "") continue
      const fields = line.split(":")
      if (match(fields)) return fields
    }
  } catch {
    // No such file (or unreadable): nothing found here.
  }
  return undefined
}

const lookup = (database: "passwd" | "group", key: string) =>
  getent(database, key) ??
    fileEntry(`/etc/${database}`, (fields) => (/^\d+$/.test(key) ? fields[2] === key : fields[0] === key))

/** A user name or number → its uid (a number that no user has is still a uid). */
export const resolveUid = (nameOrUid: string): number | undefined => {
  if (/^\d+$/.test(nameOrUid)) return Number(nameOrUid)
  const entry = lookup("passwd", nameOrUid)
  if (entry?.[2] !== undefined && /^\d+$/.test(entry[2])) return Number(entry[2])
  if (process.platform === "darwin") {
    const result = spawnSync("id", ["-u", nameOrUid], { encoding: "utf8", timeout: 5000 })
    if (result.status === 0 && /^\d+\s*$/.test(result.stdout)) return Number(result.stdout.trim())
  }
  return undefined
}

/** A group name or number → its gid. */
export const resolveGid = (nameOrGid: string): number | undefined => {
  if (/^\d+$/.test(nameOrGid)) return Number(nameOrGid)
  const entry = lookup("group", nameOrGid)
  return entry?.[2] !== undefined && /^\d+$/.test(entry[2]) ? Number(entry[2]) : undefined
}

const userNames = new Map<number, string | null>()

/** The name of `uid` from /etc/passwd (cached; no subprocess per request), or null. */
export const userName = (uid: number): string | null => {
  const cached = userNames.get(uid)
  if (cached !== undefined) return cached
  const name = fileEntry("/etc/passwd", (fields) => fields[2] === String(uid))?.[0] ?? null
  if (userNames.size > 1000) userNames.clear()
  userNames.set(uid, name)
  return name
}
