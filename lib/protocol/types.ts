// Types every layer of the codec and above shares.

/** Who is speaking: a server reads masked client frames, a client reads unmasked server frames. */
export type Role = 'client' | 'server';

/** A protocol violation, with the close code RFC 6455 says to answer it with. */
export class ProtocolError extends Error {
  constructor(
    readonly closeCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'ProtocolError';
  }
}
