import * as os from "node:os"
import * as path from "node:path"

/* Where the daemon keeps its state and socket by default: shared by planterd, planter and the client. */

/** `$PLANTER_STATE_DIR`, else `~/.planter/state`. */
export const defaultStateDir = (env: NodeJS.ProcessEnv = process.env): string =>
  env.PLANTER_STATE_DIR && env.PLANTER_STATE_DIR.length > 0
    ? path.resolve(env.PLANTER_STATE_DIR)
    : path.join(os.homedir(), ".planter", "state")

/** `$PLANTER_SOCKET`, else `<state dir>/planterd.sock`. */
export const defaultSocketPath = (stateDir: string, env: NodeJS.ProcessEnv = process.env): string =>
  env.PLANTER_SOCKET && env.PLANTER_SOCKET.length > 0
    ? path.resolve(env.PLANTER_SOCKET)
    : path.join(stateDir, "planterd.sock")
