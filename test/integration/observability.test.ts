/**
 * What an operator sees of a running daemon: the trace of a `planter run
 * --wait` exported over OTLP/HTTP (to a receiver in this test, on
 * 127.0.0.1) from the CLI through the socket to the job's phases; the live
 * fiber dump; the events feed pushed by the daemon; JSON log lines.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { TestDaemon } from "../support/daemon.js"
import {
  makeTempDir,
  planterBin,
  startDaemon,
  startDaemonExpectingRefusal,
  stopAllDaemons,
  waitFor,
  waitForJobEnd
} from "../support/daemon.js"

const TIMEOUT = 60_000

interface OtlpSpan {
  readonly service: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly attributes: Record<string, unknown>
  readonly status: { readonly code?: number } | undefined
}

/** An OTLP/HTTP JSON receiver: every span posted to /v1/traces, with its resource's service.name. */
const startReceiver = async () => {
  const spans: Array<OtlpSpan> = []
  const server = http.createServer((request, response) => {
    let body = ""
    request.on("data", (chunk) => (body += chunk))
    request.on("end", () => {
      if (request.url === "/v1/traces") {
        const data = JSON.parse(body)
        for (const resourceSpans of data.resourceSpans ?? []) {
          const resource = attributesOf(resourceSpans.resource?.attributes)
          for (const scope of resourceSpans.scopeSpans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({
                service: String(resource["service.name"]),
                traceId: span.traceId,
                spanId: span.spanId,
                parentSpanId: span.parentSpanId || undefined,
                name: span.name,
                attributes: attributesOf(span.attributes),
                status: span.status
              })
            }
          }
        }
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { spans, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() }
}

/** OTLP's [{ key, value: { stringValue | intValue | … } }] as a plain record. */
const attributesOf = (list: ReadonlyArray<{ key: string; value: Record<string, unknown> }> | undefined) => {
  const record: Record<string, unknown> = {}
  for (const { key, value } of list ?? []) {
    const inner = Object.values(value)[0]
    record[key] = "intValue" in value ? Number(inner) : inner
  }
  return record
}

let receiver: Awaited<ReturnType<typeof startReceiver>>
let daemon: TestDaemon

beforeAll(async () => {
  receiver = await startReceiver()
  daemon = await startDaemon({
    args: ["--otlp-endpoint", receiver.url, "--log-format", "json", "--log-level", "debug"],
    env: { OTEL_BSP_SCHEDULE_DELAY: "100" }
  })
  await daemon.json(["create", "--name", "obs"])
})

afterAll(async () => {
  await stopAllDaemons()
  receiver.close()
})

describe("traces", () => {
  it(
    "one trace from the CLI's span through the daemon's RPC span to the job's phases, with their attributes",
    async () => {
      const result = await daemon.cli(["run", "obs", "--wait", "--", "sh", "-c", "echo traced; exit 3"], {
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }
      })
      expect(result.code).toBe(3)
      expect(result.stdout).toContain("traced")
      const traceId = /planter: trace ([0-9a-f]{32})/.exec(result.stderr)?.[1]
      expect(traceId).toBeDefined()
      const inTrace = () => receiver.spans.filter((span) => span.traceId === traceId)
      const named = (name: string) => inTrace().find((span) => span.name === name)
      await waitFor(
        "the job's finish span to be exported",
        () => named("job.finish") !== undefined && named("job") !== undefined,
        20_000
      )

      // The CLI's command span → its RPC client span → the daemon's RPC span.
      const command = named("planter run obs")!
      expect(command.service).toBe("planter")
      const clientSpan = inTrace().find((span) => span.name === "RpcClient.JobRun")!
      expect(clientSpan.parentSpanId).toBe(command.spanId)
      const rpc = named("planterd.JobRun")!
      expect(rpc.service).toBe("planterd")
      expect(rpc.parentSpanId).toBe(clientSpan.spanId)
      expect(rpc.attributes["planter.caller.uid"]).toBe(process.getuid!())

      // Every job phase is in the same trace, below the RPC span.
      const byId = new Map(inTrace().map((span) => [span.spanId, span]))
      const descendsFromRpc = (span: OtlpSpan) => {
        for (
          let at: OtlpSpan | undefined = span;
          at !== undefined;
          at = at.parentSpanId ? byId.get(at.parentSpanId) : undefined
        ) {
          if (at.spanId === rpc.spanId) return true
        }
        return false
      }
      const job = named("job")!
      const jobId = job.attributes["planter.job.id"]
      expect(jobId).toMatch(/^job-/)
      for (
        const phase of [
          "job.prepare",
          "job.sandbox_start",
          "job.spawn",
          "job.record",
          "job.supervise",
          "job.kill",
          "job.finish"
        ]
      ) {
        const span = named(phase)
        expect(span, phase).toBeDefined()
        expect(descendsFromRpc(span!), `${phase} descends from planterd.JobRun`).toBe(true)
        expect(span!.attributes["planter.job.id"], phase).toBe(jobId)
      }
      const sandboxStart = named("job.sandbox_start")!
      expect(sandboxStart.attributes["planter.sandbox.backend"]).toBe("none")
      expect(sandboxStart.attributes.pid).toEqual(expect.any(Number))
      expect(named("job.record")!.attributes["planter.cell.id"]).toMatch(/^cell-/)
      const finish = named("job.finish")!
      expect(finish.attributes["planter.exit_code"]).toBe(3)
      expect(finish.attributes["planter.termination_reason"]).toBe("exited")
      expect(named("job.kill")!.attributes["planter.termination_reason"]).toBe("exited")

      // The daemon's debug line about the job's end carries this trace's id.
      await waitFor(
        "the job's end in the JSON log",
        () => daemon.output().includes(`${jobId} ended: exited, exit code 3`)
      )
      const endLine = daemon.output().split("\n").find((line) => line.includes(`${jobId} ended:`))!
      const parsed = JSON.parse(endLine)
      expect(parsed.level).toBe("DEBUG")
      expect(parsed.trace_id).toBe(traceId)
      expect(parsed.span_id).toMatch(/^[0-9a-f]{16}$/)
      expect(parsed["planter.job.id"]).toBe(jobId)
    },
    TIMEOUT
  )

  it("records a failed request as an error on its RPC span", async () => {
    const result = await daemon.cli(["job", "status", "job-doesnotexist"], {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }
    })
    expect(result.code).toBe(1)
    const traceId = /planter: trace ([0-9a-f]{32})/.exec(result.stderr)?.[1]
    const rpc = () => receiver.spans.find((span) => span.traceId === traceId && span.name === "planterd.JobStatus")
    await waitFor("the JobStatus span", () => rpc() !== undefined)
    expect(rpc()!.attributes).toEqual(expect.objectContaining({ error: true, "planter.error.code": "not_found" }))
  }, TIMEOUT)
})

describe("bad tracing flags", () => {
  it("refuses an endpoint that is not an http(s) URL, saying what to give", async () => {
    const refused = await startDaemonExpectingRefusal({ args: ["--otlp-endpoint", "collector:4318"] })
    expect(refused.code).toBe(2)
    expect(refused.output).toContain("is not an http(s) URL")
  }, TIMEOUT)
})

describe("logs", () => {
  it("every line is one JSON object; the start lines say the state dir, socket, sandbox and policy", () => {
    const lines = daemon.output().split("\n").filter((line) => line.trim() !== "")
    expect(lines.length).toBeGreaterThan(0)
    const parsed = lines.map((line) => JSON.parse(line))
    for (const line of parsed) {
      expect(line).toEqual(
        expect.objectContaining({ time: expect.any(String), level: expect.any(String), message: expect.any(String) })
      )
    }
    const start = parsed.find((line) => String(line.message).includes("listening on"))
    expect(start).toEqual(expect.objectContaining({
      "planter.state_dir": daemon.stateDir,
      "planter.socket": daemon.socketPath,
      "planter.sandbox.mode": "disabled",
      "planter.policy": "the daemon's uid and root only",
      trace_id: expect.stringMatching(/^[0-9a-f]{32}$/)
    }))
  })
})

describe("debug fibers", () => {
  it("lists a running job's fiber by its id, in its span, and the monitor's fiber", async () => {
    const job = await daemon.json(["run", "obs", "--", "sleep", "30"])
    const { fibers } = await daemon.json<{ fibers: Array<any> }>(["debug", "fibers"])
    const jobFiber = fibers.find((fiber) =>
      fiber.labels["planter.fiber"] === "job" && fiber.labels["planter.job.id"] === job.id
    )
    expect(jobFiber).toEqual(
      expect.objectContaining({ status: "suspended", span: "job.supervise", span_ms: expect.any(Number) })
    )
    expect(fibers.some((fiber) => fiber.labels["planter.fiber"] === "monitor")).toBe(true)
    const text = await daemon.cli(["debug", "fibers"])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(new RegExp(`job ${job.id}\\s+in job.supervise for`))
    await daemon.cli(["job", "kill", job.id, "--force"])
  }, TIMEOUT)

  it("is refused to a caller whose role is below admin", async () => {
    // Others may connect: the socket lives in a directory of its own, outside the private state dir.
    const socketDir = makeTempDir()
    fs.chmodSync(socketDir, 0o755)
    const reader = await startDaemon({
      socketPath: path.join(socketDir, "planterd.sock"),
      args: ["--allow-uid", "65534:read"]
    })
    const result = await reader.cli(["--json", "debug", "fibers"], { env: {} })
    // Root is admin: allowed.
    expect(result.code).toBe(0)
    const nobody = spawnSync("setpriv", [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      process.execPath,
      planterBin,
      "--socket",
      reader.socketPath,
      "--json",
      "debug",
      "fibers"
    ], { encoding: "utf8" })
    expect(nobody.status).toBe(1)
    expect(JSON.parse(nobody.stdout).error.code).toBe("unauthorized")
  }, TIMEOUT)
})

describe("events -f", () => {
  it("streams a job's start and exit as the daemon journals them", async () => {
    const follower = spawn(process.execPath, [planterBin, "--socket", daemon.socketPath, "--json", "events", "-f"], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    follower.stdout.on("data", (data) => (out += data))
    try {
      // The follower is subscribed once `debug fibers` shows it.
      await waitFor("the follower to subscribe", async () => {
        const { fibers } = await daemon.json<{ fibers: Array<any> }>(["debug", "fibers"])
        return fibers.some((fiber) => fiber.labels["planter.rpc"] === "EventsFollow")
      })
      const job = await daemon.json(["run", "obs", "--", "true"])
      await waitForJobEnd(daemon, job.id)
      const events = () => out.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line))
      await waitFor(
        "the job's start and exit on the feed",
        () =>
          events().some((event) => event.kind === "job_started" && event.job_id === job.id) &&
          events().some((event) => event.kind === "job_exited" && event.job_id === job.id)
      )
      const ids = events().map((event) => event.id)
      expect([...ids].sort((a, b) => a - b)).toEqual(ids)
    } finally {
      follower.kill("SIGTERM")
    }
  }, TIMEOUT)
})
