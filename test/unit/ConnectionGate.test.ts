import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"
import { describe, expect, it } from "vitest"
import { ConnectionGate } from "../../src/layers/ConnectionGate.js"

const request = (id: number, tag = "Health") =>
  ({ _tag: "Request", id: String(id), tag, payload: {}, headers: [] }) as unknown as FromClientEncoded
const exit = (id: number) =>
  ({ _tag: "Exit", requestId: String(id), exit: { _tag: "Success", value: null } }) as unknown as FromServerEncoded
const ids = (messages: ReadonlyArray<FromClientEncoded>) =>
  messages.map((message) => (message._tag === "Request" ? `req ${message.id}` : message._tag))

const makeGate = (limits = { maxInFlight: 2, maxQueued: 4, maxQueuedResponseBytes: 1000 }) => {
  const reading: Array<boolean> = []
  const gate = new ConnectionGate(limits, (message) => message.tag !== "Unknown", (value) => reading.push(value))
  return { gate, reading }
}

describe("ConnectionGate", () => {
  it("runs at most maxInFlight requests; the rest wait in order and go as answers are written", () => {
    const { gate } = makeGate()
    expect(ids(gate.receive(request(1)))).toEqual(["req 1"])
    expect(ids(gate.receive(request(2)))).toEqual(["req 2"])
    expect(gate.receive(request(3))).toEqual([])
    expect(gate.receive(request(4))).toEqual([])
    expect([gate.inFlight, gate.queued]).toEqual([2, 2])
    expect(ids(gate.written(exit(2), 0))).toEqual(["req 3"])
    // A chunk of a stream is not the end of its request.
    expect(gate.written({ _tag: "Chunk", requestId: "1", values: [1] } as unknown as FromServerEncoded, 0)).toEqual([])
    expect(ids(gate.written(exit(1), 0))).toEqual(["req 4"])
    expect([gate.inFlight, gate.queued]).toEqual([2, 0])
  })

  it("never queues acks, pings and interrupts; an interrupt takes its request out of the queue; Eof waits its turn", () => {
    const { gate } = makeGate()
    gate.receive(request(1))
    gate.receive(request(2))
    gate.receive(request(3))
    expect(ids(gate.receive({ _tag: "Ack", requestId: "1" } as FromClientEncoded))).toEqual(["Ack"])
    expect(ids(gate.receive({ _tag: "Ping" } as FromClientEncoded))).toEqual(["Ping"])
    expect(ids(gate.receive({ _tag: "Interrupt", requestId: "3" } as unknown as FromClientEncoded))).toEqual([
      "Interrupt"
    ])
    expect(gate.queued).toBe(0)
    gate.receive(request(4))
    expect(gate.receive({ _tag: "Eof" } as FromClientEncoded)).toEqual([])
    expect(ids(gate.written(exit(1), 0))).toEqual(["req 4", "Eof"])
  })

  it("stops reading when the queue is full, and reads again once it has halved", () => {
    const { gate, reading } = makeGate()
    for (let id = 1; id <= 6; id++) gate.receive(request(id))
    expect(gate.queued).toBe(4)
    expect(reading).toEqual([false])
    gate.written(exit(1), 0)
    expect(reading).toEqual([false])
    gate.written(exit(2), 0)
    expect(reading).toEqual([false, true])
  })

  it("stops reading, and starts nothing queued, while the peer leaves answers unread; resumes when it reads them", () => {
    const { gate, reading } = makeGate()
    gate.receive(request(1))
    gate.receive(request(2))
    gate.receive(request(3))
    gate.queuedBytes(5000)
    expect(reading).toEqual([false])
    // Request 1's answer is out but the peer has not read: request 3 must wait.
    expect(gate.written(exit(1), 5000)).toEqual([])
    expect(gate.inFlight).toBe(1)
    // The socket drained.
    expect(ids(gate.responseBytes(0))).toEqual(["req 3"])
    expect(reading).toEqual([false, true])
  })

  it("does not count requests the server answers without an Exit (unknown tags)", () => {
    const { gate } = makeGate()
    for (let id = 1; id <= 5; id++) expect(ids(gate.receive(request(id, "Unknown")))).toEqual([`req ${id}`])
    expect(gate.inFlight).toBe(0)
  })
})
