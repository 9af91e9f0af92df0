// The CLI's side of the control socket (service/control.ts).
import { request } from 'node:http';
import { join } from 'node:path';
import { StargzfsError, type ErrorCode } from '../errors.js';

/** Where a service on `root` listens. */
export const controlSocket = (root: string): string => join(root, 'serve.sock');

/** An error the service answered with, as the CLI reports it (code and exit code kept). */
export class ServiceAnswerError extends StargzfsError {
  constructor(code: ErrorCode, message: string, readonly exit: number | undefined) {
    super(code, message);
  }
}

/**
 * One request to the service listening at `socket`. Undefined: no service answers there
 * (no socket, or a socket nobody listens on), so the caller does the work itself.
 */
export function callService(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown } | undefined> {
  return new Promise((resolve, reject) => {
    const data = body !== undefined ? JSON.stringify(body) : undefined;
    const req = request(
      { socketPath: socket, method, path, headers: { 'content-type': 'application/json', accept: 'application/json', ...(data !== undefined ? { 'content-length': Buffer.byteLength(data) } : {}) } },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
          } catch {
            reject(new Error(`the service at ${socket} answered ${res.statusCode}: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(undefined);
      else reject(err);
    });
    req.end(data);
  });
}

/** The answer's body, or the service's error thrown as a StargzfsError. */
export function answerOf<T>(answer: { status: number; body: unknown }): T {
  if (answer.status >= 200 && answer.status < 300) return answer.body as T;
  const e = (answer.body as { error?: { code?: string; message?: string; exit?: number } }).error;
  throw new ServiceAnswerError((e?.code ?? 'SGZ_IMAGE') as ErrorCode, e?.message ?? `the service answered ${answer.status}`, e?.exit);
}
