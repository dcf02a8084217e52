import type { FromClientEncoded, FromServerEncoded } from "@effect/rpc/RpcMessage"

/**
 * What one connection may hold of the daemon, whatever its peer does: a
 * peer that sends requests faster than it reads the answers is slowed
 * down (its requests wait, then its socket is no longer read) instead of
 * growing the daemon.
 */
export interface ConnectionLimits {
  /**
   * Requests of one connection running at once. A request counts from the
   * moment it is handed to the server until its answer is written to the
   * socket, so its answer's bytes are bounded by this too.
   */
  readonly maxInFlight: number
  /** Requests waiting for a slot; past this the socket is not read until the queue halves. */
  readonly maxQueued: number
  /** Answer bytes the peer has not read yet; past this the socket is not read, and queued requests wait, until it reads them. */
  readonly maxQueuedResponseBytes: number
}

/**
 * 4 running requests: a pipelining client (50 starts back to back) keeps
 * the daemon busy, while a peer that never reads holds at most 8 answers
 * (4 × a 4 MiB log chunk, and its encoded copy) plus 4 MiB of written bytes.
 */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxInFlight: 4,
  maxQueued: 256,
  maxQueuedResponseBytes: 4 * 1024 * 1024
}

/** The reasons a connection is not being read. */
type Pause = "queue" | "responses"

/**
 * The per-connection gate between the socket and the RPC server. It hands
 * messages on in the order they came, except that requests past
 * `maxInFlight` wait in a queue. Acks, pings and interrupts are never
 * queued (a stream's ack or an interrupt must reach the request it is
 * for), and an interrupt for a queued request takes it out of the queue.
 * The owner writes answers, reports them here, and reads the socket only
 * while `reading` is true.
 */
export class ConnectionGate {
  private readonly running = new Map<string, number>()
  private runningCount = 0
  private readonly queue: Array<FromClientEncoded> = []
  private readonly pauses = new Set<Pause>()

  constructor(
    private readonly limits: ConnectionLimits,
    /** Whether the server knows this request (else it answers with a defect, never with an Exit to count). */
    private readonly counts: (request: Extract<FromClientEncoded, { _tag: "Request" }>) => boolean,
    private readonly setReading: (reading: boolean) => void
  ) {}

  get inFlight() {
    return this.runningCount
  }

  get queued() {
    return this.queue.length
  }

  get reading() {
    return this.pauses.size === 0
  }

  /** A message from the peer: answers what to hand to the server now, in order. */
  receive(message: FromClientEncoded): Array<FromClientEncoded> {
    switch (message._tag) {
      case "Request": {
        if (!this.counts(message)) return [message]
        if (this.queue.length === 0 && this.hasRoom()) return [this.start(message)]
        this.queue.push(message)
        if (this.queue.length >= this.limits.maxQueued) this.pause("queue")
        return []
      }
      case "Interrupt": {
        const index = this.queue.findIndex((queued) =>
          queued._tag === "Request" && String(queued.id) === String(message.requestId)
        )
        if (index >= 0) {
          this.queue.splice(index, 1)
          this.maybeResumeQueue()
        }
        return [message]
      }
      case "Eof":
        // After the requests before it.
        if (this.queue.length > 0) {
          this.queue.push(message)
          return []
        }
        return [message]
      default:
        return [message]
    }
  }

  /** An answer was written to the socket: its request's slot is free once its Exit is out. */
  written(response: FromServerEncoded, queuedBytes: number): Array<FromClientEncoded> {
    if (response._tag === "Exit") this.finish(String(response.requestId))
    return this.responseBytes(queuedBytes)
  }

  /** Right after queuing a write: past the cap, stop reading (nothing is handed on here). */
  queuedBytes(queued: number): void {
    if (queued > this.limits.maxQueuedResponseBytes) this.pause("responses")
  }

  /** The socket's bytes not yet taken by the peer, after a write or when it drained. */
  responseBytes(queuedBytes: number): Array<FromClientEncoded> {
    if (queuedBytes > this.limits.maxQueuedResponseBytes) {
      this.pause("responses")
      return []
    }
    if (this.pauses.delete("responses") && this.pauses.size === 0) this.setReading(true)
    return this.pump()
  }

  private hasRoom() {
    return this.runningCount < this.limits.maxInFlight && !this.pauses.has("responses")
  }

  private start(request: Extract<FromClientEncoded, { _tag: "Request" }>) {
    const id = String(request.id)
    this.running.set(id, (this.running.get(id) ?? 0) + 1)
    this.runningCount++
    return request
  }

  private finish(id: string) {
    const count = this.running.get(id)
    if (count === undefined) return
    if (count <= 1) this.running.delete(id)
    else this.running.set(id, count - 1)
    this.runningCount--
  }

  /** Queued messages that may go now. */
  private pump(): Array<FromClientEncoded> {
    const out: Array<FromClientEncoded> = []
    while (this.queue.length > 0) {
      const next = this.queue[0]!
      if (next._tag === "Request") {
        if (!this.hasRoom()) break
        this.queue.shift()
        out.push(this.start(next))
      } else {
        this.queue.shift()
        out.push(next)
      }
    }
    this.maybeResumeQueue()
    return out
  }

  private maybeResumeQueue() {
    if (this.pauses.has("queue") && this.queue.length <= this.limits.maxQueued / 2) {
      this.pauses.delete("queue")
      if (this.pauses.size === 0) this.setReading(true)
    }
  }

  private pause(reason: Pause) {
    const wasReading = this.pauses.size === 0
    this.pauses.add(reason)
    if (wasReading) this.setReading(false)
  }
}
