// RFC 7692 permessage-deflate, the negotiation: the user's options, the client's offer, the
// server's choice among offers and the client's check of the response (RFC 7692 §5, §7.1). What is
// agreed is a DeflateParams, which the codec (protocol/permessage-deflate.ts) works from.
import { MAX_WINDOW_BITS, MIN_WINDOW_BITS, type DeflateParams } from '../protocol/permessage-deflate.js';
import { parseExtensions, serializeExtension, type ExtensionOffer } from './extensions.js';

export const PERMESSAGE_DEFLATE = 'permessage-deflate';
/** Messages shorter than this many bytes are sent uncompressed by default. */
export const DEFAULT_DEFLATE_THRESHOLD = 1024;

export interface PerMessageDeflateOptions {
  /** Ask (client) or require (server) that the server resets its compression context per message. */
  serverNoContextTakeover?: boolean;
  /** Ask (client) or require (server) that the client resets its compression context per message. */
  clientNoContextTakeover?: boolean;
  /** Largest server window, 8–15. */
  serverMaxWindowBits?: number;
  /**
   * Client: offer client_max_window_bits with this value, or without one when true (the default,
   * as browsers do). Server: the largest client window it accepts to inflate, 8–15.
   */
  clientMaxWindowBits?: number | boolean;
  /** Messages shorter than this are sent uncompressed. Default 1024 bytes. */
  threshold?: number;
  /** zlib compression level, 0–9. Default zlib's (6). */
  level?: number;
  /** zlib memLevel, 1–9: memory per compressor against ratio. Default 8. */
  memLevel?: number;
}

export class NegotiationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NegotiationError';
  }
}

function checkWindowBits(value: unknown, name: string): void {
  if (value !== undefined && (!Number.isInteger(value) || (value as number) < MIN_WINDOW_BITS || (value as number) > MAX_WINDOW_BITS)) {
    throw new RangeError(`${name} must be an integer from ${MIN_WINDOW_BITS} to ${MAX_WINDOW_BITS}`);
  }
}

/** Validates user options (true means all defaults, false or undefined means off). */
export function normalizeDeflateOptions(value: unknown, name: string): PerMessageDeflateOptions | null {
  if (value === undefined || value === false) return null;
  if (value === true) return {};
  if (typeof value !== 'object' || value === null) throw new TypeError(`${name} must be a boolean or an options object`);
  const options = value as PerMessageDeflateOptions;
  checkWindowBits(options.serverMaxWindowBits, 'serverMaxWindowBits');
  if (typeof options.clientMaxWindowBits !== 'boolean') checkWindowBits(options.clientMaxWindowBits, 'clientMaxWindowBits');
  if (options.threshold !== undefined && !(typeof options.threshold === 'number' && options.threshold >= 0)) {
    throw new RangeError('threshold must be a number of bytes, at least 0');
  }
  if (options.level !== undefined && !(Number.isInteger(options.level) && options.level >= 0 && options.level <= 9)) {
    throw new RangeError('level must be an integer from 0 to 9');
  }
  if (options.memLevel !== undefined && !(Number.isInteger(options.memLevel) && options.memLevel >= 1 && options.memLevel <= 9)) {
    throw new RangeError('memLevel must be an integer from 1 to 9');
  }
  return { ...options };
}

/** The client's offer (RFC 7692 §5): by default `permessage-deflate; client_max_window_bits`. */
export function clientOffer(options: PerMessageDeflateOptions): string {
  const params: ExtensionOffer['params'] = [];
  if (options.serverNoContextTakeover) params.push(['server_no_context_takeover', true]);
  if (options.clientNoContextTakeover) params.push(['client_no_context_takeover', true]);
  if (options.serverMaxWindowBits !== undefined) params.push(['server_max_window_bits', String(options.serverMaxWindowBits)]);
  const clientBits = options.clientMaxWindowBits ?? true;
  if (clientBits !== false) params.push(['client_max_window_bits', clientBits === true ? true : String(clientBits)]);
  return serializeExtension({ name: PERMESSAGE_DEFLATE, params });
}

/** RFC 7692 §7.1.2: a window size value is 1*DIGIT from 8 to 15 (quotes already removed). */
function windowBitsValue(value: string | true): number | null {
  if (value === true || !/^[0-9]{1,2}$/.test(value)) return null;
  const bits = Number(value);
  return bits >= MIN_WINDOW_BITS && bits <= MAX_WINDOW_BITS && String(bits) === value ? bits : null;
}

type ParamMap = Map<string, string | true>;

/** Parameters of one permessage-deflate element; duplicates and unknown names are errors (§5). */
function paramsOf(offer: ExtensionOffer): ParamMap | string {
  const params: ParamMap = new Map();
  for (const [name, value] of offer.params) {
    if (params.has(name)) return `duplicate parameter ${name}`;
    if (!['server_no_context_takeover', 'client_no_context_takeover', 'server_max_window_bits', 'client_max_window_bits'].includes(name)) {
      return `unknown parameter ${name}`;
    }
    params.set(name, value);
  }
  return params;
}

/**
 * The client checks the server's Sec-WebSocket-Extensions (RFC 7692 §5, §7.1): only what it
 * offered, once, with valid parameters. Returns null when the server declined permessage-deflate.
 */
export function acceptServerResponse(header: string, options: PerMessageDeflateOptions | null): DeflateParams | null {
  let elements: ExtensionOffer[];
  try {
    elements = parseExtensions(header);
  } catch (error) {
    throw new NegotiationError(`malformed Sec-WebSocket-Extensions: ${(error as Error).message}`);
  }
  if (elements.length === 0) return null;
  if (options === null) throw new NegotiationError(`server selected an extension that was not offered: ${header}`);
  const element = elements[0]!;
  if (elements.length > 1 || element.name !== PERMESSAGE_DEFLATE) {
    throw new NegotiationError(`server selected an extension that was not offered: ${header}`);
  }
  const params = paramsOf(element);
  if (typeof params === 'string') throw new NegotiationError(`invalid permessage-deflate response: ${params}`);
  for (const name of ['server_no_context_takeover', 'client_no_context_takeover']) {
    if (params.has(name) && params.get(name) !== true) throw new NegotiationError(`${name} takes no value`);
  }
  if (options.serverNoContextTakeover && !params.has('server_no_context_takeover')) {
    throw new NegotiationError('server ignored the offered server_no_context_takeover');
  }
  let receiveMaxWindowBits = MAX_WINDOW_BITS;
  if (params.has('server_max_window_bits')) {
    const bits = windowBitsValue(params.get('server_max_window_bits')!);
    if (bits === null) throw new NegotiationError('invalid server_max_window_bits');
    if (options.serverMaxWindowBits !== undefined && bits > options.serverMaxWindowBits) {
      throw new NegotiationError('server_max_window_bits larger than offered');
    }
    receiveMaxWindowBits = bits;
  } else if (options.serverMaxWindowBits !== undefined) {
    throw new NegotiationError('server ignored the offered server_max_window_bits');
  }
  let sendMaxWindowBits = MAX_WINDOW_BITS;
  const offeredClientBits = options.clientMaxWindowBits ?? true;
  if (params.has('client_max_window_bits')) {
    // RFC 7692 §7.1.2.2: only if offered, and always with a value in the response.
    if (offeredClientBits === false) throw new NegotiationError('client_max_window_bits in the response was not offered');
    const bits = windowBitsValue(params.get('client_max_window_bits')!);
    if (bits === null) throw new NegotiationError('invalid client_max_window_bits');
    if (typeof offeredClientBits === 'number' && bits > offeredClientBits) throw new NegotiationError('client_max_window_bits larger than offered');
    sendMaxWindowBits = bits;
  } else if (typeof offeredClientBits === 'number') {
    sendMaxWindowBits = offeredClientBits;
  }
  return {
    sendNoContextTakeover: params.has('client_no_context_takeover') || options.clientNoContextTakeover === true,
    sendMaxWindowBits,
    receiveNoContextTakeover: params.has('server_no_context_takeover'),
    receiveMaxWindowBits,
    threshold: options.threshold ?? DEFAULT_DEFLATE_THRESHOLD,
    level: options.level,
    memLevel: options.memLevel,
  };
}

/**
 * The server picks the first acceptable permessage-deflate offer (RFC 7692 §5: offers with unknown,
 * duplicate or invalid parameters are declined, not fatal) and builds its response.
 */
export function acceptClientOffers(header: string | undefined, options: PerMessageDeflateOptions): { response: string; params: DeflateParams } | null {
  if (header === undefined) return null;
  let elements: ExtensionOffer[];
  try {
    elements = parseExtensions(header);
  } catch {
    return null;
  }
  for (const element of elements) {
    if (element.name !== PERMESSAGE_DEFLATE) continue;
    const params = paramsOf(element);
    if (typeof params === 'string') continue;
    if ([params.get('server_no_context_takeover'), params.get('client_no_context_takeover')].some((v) => v !== undefined && v !== true)) continue;
    let serverBits: number | null = null;
    if (params.has('server_max_window_bits')) {
      serverBits = windowBitsValue(params.get('server_max_window_bits')!);
      if (serverBits === null) continue;
    }
    let clientBits: number | true | null = null;
    if (params.has('client_max_window_bits')) {
      const raw = params.get('client_max_window_bits')!;
      clientBits = raw === true ? true : windowBitsValue(raw);
      if (clientBits === null) continue;
    }
    const response: ExtensionOffer['params'] = [];
    const sendNoContextTakeover = params.has('server_no_context_takeover') || options.serverNoContextTakeover === true;
    if (sendNoContextTakeover) response.push(['server_no_context_takeover', true]);
    const receiveNoContextTakeover = params.has('client_no_context_takeover') || options.clientNoContextTakeover === true;
    if (receiveNoContextTakeover) response.push(['client_no_context_takeover', true]);
    let sendMaxWindowBits = MAX_WINDOW_BITS;
    if (serverBits !== null || options.serverMaxWindowBits !== undefined) {
      sendMaxWindowBits = Math.min(serverBits ?? MAX_WINDOW_BITS, options.serverMaxWindowBits ?? MAX_WINDOW_BITS);
      response.push(['server_max_window_bits', String(sendMaxWindowBits)]);
    }
    let receiveMaxWindowBits = MAX_WINDOW_BITS;
    const wantedClientBits = typeof options.clientMaxWindowBits === 'number' ? options.clientMaxWindowBits : null;
    if (clientBits !== null) {
      receiveMaxWindowBits = Math.min(clientBits === true ? MAX_WINDOW_BITS : clientBits, wantedClientBits ?? MAX_WINDOW_BITS);
      if (wantedClientBits !== null) response.push(['client_max_window_bits', String(receiveMaxWindowBits)]);
    }
    return {
      response: serializeExtension({ name: PERMESSAGE_DEFLATE, params: response }),
      params: {
        sendNoContextTakeover,
        sendMaxWindowBits,
        receiveNoContextTakeover,
        receiveMaxWindowBits,
        threshold: options.threshold ?? DEFAULT_DEFLATE_THRESHOLD,
        level: options.level,
        memLevel: options.memLevel,
      },
    };
  }
  return null;
}

