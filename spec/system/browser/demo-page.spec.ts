// The page `wss serve` answers GET / with, driven in Debian's headless Chromium: the real `wss`
// command serves it, the browser uses it as a person would (fill in, click), and the assertions
// read the page's DOM.
import { expect } from 'chai';
import type net from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { WebSocketServer } from 'ws';
import { cleanUp, onCleanup, serve } from '../../helpers/cli.js';
import { launchChromium } from './harness.js';

interface Row {
  dir: string;
  kind: string;
  size: string;
  time: string;
  data: string;
}

describe('the page `wss serve` serves at / (Chromium)', function () {
  this.timeout(60_000);
  let browser: Browser | undefined;

  before(async () => {
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    browser = undefined;
  });

  afterEach(cleanUp);

  /**
   * A fresh page on `wss serve`'s page. Page errors and CSP violations fail the test, and every
   * request the page makes is recorded (it must make none but to the server that served it).
   */
  async function openPage(port: number, query = ''): Promise<{ page: Page; requests: string[]; problems: string[] }> {
    const page = await browser!.newPage();
    onCleanup(() => page.close());
    const requests: string[] = [];
    const problems: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error' && !/WebSocket connection to .* failed/.test(message.text())) problems.push(`console error: ${message.text()}`);
    });
    await page.goto(`http://127.0.0.1:${port}/${query}`);
    return { page, requests, problems };
  }

  const text = (page: Page, id: string): Promise<string> => page.locator(`#${id}`).innerText();

  async function rows(page: Page, direction?: string): Promise<Row[]> {
    return page.locator('#log-body tr').evaluateAll(
      (trs, dir) =>
        trs
          .filter((tr) => dir === null || (tr as HTMLElement).dataset.dir === dir)
          .map((tr) => {
            const cell = (name: string): string => tr.querySelector(`td.${name}`)?.textContent ?? '';
            return { dir: (tr as HTMLElement).dataset.dir ?? '', kind: cell('kind'), size: cell('size'), time: cell('time'), data: cell('data') };
          }),
      direction ?? null,
    );
  }

  /** Waits until the page has received `count` messages in all. */
  async function receivedCount(page: Page, count: number): Promise<void> {
    await page.waitForFunction((n) => document.querySelectorAll('#log-body tr[data-dir="in"]').length >= n, count);
  }

  async function connect(page: Page, url?: string, protocols?: string): Promise<void> {
    if (url !== undefined) await page.fill('#url', url);
    if (protocols !== undefined) await page.fill('#protocols', protocols);
    await page.click('#connect');
    await page.waitForFunction(() => document.body.dataset.state === 'open' || document.body.dataset.clean !== undefined);
  }

  async function sendAs(page: Page, format: string, message: string): Promise<void> {
    await page.selectOption('#format', format);
    await page.fill('#message', message);
    await page.click('#send');
  }

  async function closeWith(page: Page, code: string, reason: string): Promise<void> {
    await page.fill('#code', code);
    await page.fill('#reason', reason);
    await page.click('#close');
  }

  /** A `ws` server (from devDependencies): echoes, speaks "chat", or drops a client on "drop". */
  async function wsServer(): Promise<number> {
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: (offered) => (offered.has('chat') ? 'chat' : false) });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    server.on('connection', (socket) =>
      socket.on('message', (data, isBinary) => {
        if (!isBinary && data.toString() === 'drop') socket.terminate();
        else socket.send(data, { binary: isBinary });
      }),
    );
    onCleanup(
      () =>
        new Promise<void>((resolve) => {
          for (const client of server.clients) client.terminate();
          server.close(() => resolve());
        }),
    );
    return (server.address() as net.AddressInfo).port;
  }

  it('talks to its server with WebSocketStream: text, JSON, hex, base64 and UTF-8 binary, each shown with its time, kind and size', async () => {
    const { cli: server, port } = await serve();
    const { page, requests, problems } = await openPage(port);
    expect(await text(page, 'api')).to.equal('WebSocketStream');
    expect(await page.inputValue('#url')).to.equal(`ws://127.0.0.1:${port}/`);
    await connect(page);
    expect(await page.evaluate(() => document.body.dataset.state)).to.equal('open');
    expect(await text(page, 'protocol')).to.equal('(none)');

    await sendAs(page, 'text', 'héllo');
    await receivedCount(page, 1);
    await sendAs(page, 'json', '{"a": [1, 2]}');
    await receivedCount(page, 2);
    await sendAs(page, 'json', '{oops');
    expect(await text(page, 'send-error')).to.match(/^not JSON: /);
    await sendAs(page, 'hex', '00 ff 10');
    await receivedCount(page, 3);
    await sendAs(page, 'base64', 'AAH/');
    await receivedCount(page, 4);
    await sendAs(page, 'utf8', 'é');
    await receivedCount(page, 5);
    expect(await text(page, 'send-error')).to.equal('');

    const expected = [
      { kind: 'text', size: '6 B', data: 'héllo' },
      { kind: 'JSON', size: '13 B', data: '{"a": [1, 2]}' },
      { kind: 'binary', size: '3 B', data: '00 ff 10' },
      { kind: 'binary', size: '3 B', data: '00 01 ff' },
      { kind: 'binary', size: '2 B', data: 'c3 a9' },
    ];
    for (const direction of ['out', 'in']) {
      const shown = await rows(page, direction);
      expect(shown.map(({ kind, size, data }) => ({ kind, size, data })), `${direction} rows`).to.deep.equal(expected);
      for (const row of shown) expect(row.time).to.match(/^\d\d:\d\d:\d\d\.\d{3}$/);
    }
    // The invalid JSON was not sent.
    expect(server.stderr).to.not.include('oops');

    // Every echo was matched with its send: five round-trip times, on the plot too.
    await page.waitForFunction(() => document.body.dataset.rttSamples === '5');
    expect(await text(page, 'stat-sent')).to.equal('5 (27 B)');
    expect(await text(page, 'stat-received')).to.equal('5 (27 B)');
    expect(await text(page, 'stat-rtt')).to.match(/^\d+(?:\.\d+)? ms$/);
    expect(await text(page, 'stat-rtt-avg')).to.match(/^\d+(?:\.\d+)? ms$/);
    const plot = await page.evaluate(() => {
      const canvas = document.getElementById('plot') as HTMLCanvasElement;
      const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      // Pixels of the round-trip line's colour (#d9480f) and of the received bars' (#3d7cc9).
      let line = 0;
      let bars = 0;
      for (let i = 0; i < pixels.length; i += 4) {
        if (pixels[i] === 0xd9 && pixels[i + 1] === 0x48 && pixels[i + 2] === 0x0f) line++;
        if (pixels[i] === 0x3d && pixels[i + 1] === 0x7c && pixels[i + 2] === 0xc9) bars++;
      }
      return { line, bars, rttPoints: Number(canvas.dataset.rttPoints), barCount: Number(canvas.dataset.bars) };
    });
    expect(plot.rttPoints, 'seconds with a round-trip time on the plot').to.be.at.least(1);
    expect(plot.barCount, 'seconds with messages on the plot').to.be.at.least(1);
    expect(plot.line, 'pixels of the round-trip line').to.be.above(0);
    expect(plot.bars, 'pixels of the received bars').to.be.above(0);

    await closeWith(page, '4000', 'bye');
    await page.waitForFunction(() => document.body.dataset.state === 'closed');
    expect(await text(page, 'close-code')).to.equal('4000');
    expect(await text(page, 'close-reason')).to.equal('"bye"');
    expect(await text(page, 'close-clean')).to.equal('yes');
    await server.waitFor('stderr', /#1 closed: code 4000, reason "bye"/);

    // Offline: the page fetched nothing but itself.
    expect(requests).to.deep.equal([`http://127.0.0.1:${port}/`]);
    expect(problems).to.deep.equal([]);
  });

  it('connects to any URL (a `ws` server, with a subprotocol), refuses a bad close code, and shows an unclean close', async () => {
    const { port } = await serve();
    const other = await wsServer();
    const { page, problems } = await openPage(port);
    await connect(page, `ws://127.0.0.1:${other}/somewhere`, 'chat');
    expect(await text(page, 'protocol')).to.equal('chat');
    await sendAs(page, 'text', 'elsewhere');
    await receivedCount(page, 1);
    expect((await rows(page, 'in'))[0]).to.include({ kind: 'text', data: 'elsewhere' });

    // 1001 is for endpoints going away, not for scripts: WebSocketStream.close() throws.
    await closeWith(page, '1001', '');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('#log-body tr[data-dir="error"]')).some((tr) => tr.textContent!.includes('close refused')));
    expect(await page.evaluate(() => document.body.dataset.state)).to.equal('open');

    await sendAs(page, 'text', 'drop');
    await page.waitForFunction(() => document.body.dataset.state === 'closed');
    expect(await text(page, 'close-clean')).to.equal('no');
    expect(await text(page, 'close-code')).to.equal('1006');
    expect((await rows(page, 'error')).map((row) => row.data)).to.satisfy((lines: string[]) => lines.some((line) => line.startsWith('closed uncleanly: WebSocketError')));
    expect(problems).to.deep.equal([]);
  });

  it('with ?api=websocket uses WebSocket: the same messages, close code and cleanness', async () => {
    const { cli: server, port } = await serve(['--mode', 'broadcast']);
    const { page, problems } = await openPage(port, '?api=websocket');
    expect(await text(page, 'api')).to.equal('WebSocket');
    expect(await text(page, 'api-note')).to.include('?api=websocket');
    await connect(page);
    await sendAs(page, 'text', 'via WebSocket');
    await sendAs(page, 'hex', 'cafe');
    await receivedCount(page, 2);
    expect((await rows(page, 'in')).map(({ kind, size, data }) => ({ kind, size, data }))).to.deep.equal([
      { kind: 'text', size: '13 B', data: 'via WebSocket' },
      { kind: 'binary', size: '2 B', data: 'ca fe' },
    ]);
    await page.waitForFunction(() => document.body.dataset.rttSamples === '2');
    await closeWith(page, '4001', 'done');
    await page.waitForFunction(() => document.body.dataset.state === 'closed');
    expect([await text(page, 'close-code'), await text(page, 'close-reason'), await text(page, 'close-clean')]).to.deep.equal(['4001', '"done"', 'yes']);
    await server.waitFor('stderr', /#1 closed: code 4001, reason "done"/);
    expect(problems).to.deep.equal([]);
  });

  it('repeats a message on a timer until told to stop, and shows the rate', async () => {
    const { port } = await serve();
    const { page, problems } = await openPage(port, '?url=' + encodeURIComponent('ws://127.0.0.1:' + String(port) + '/repeat'));
    expect(await page.inputValue('#url')).to.equal(`ws://127.0.0.1:${port}/repeat`);
    await connect(page);
    await page.fill('#message', 'tick');
    await page.fill('#repeat-ms', '20');
    await page.check('#repeat');
    await receivedCount(page, 10);
    // The rate shown is that of the last whole second: wait for one with messages in it.
    await page.waitForFunction(() => /^[1-9]\d* out\/s, [1-9]\d* in\/s$/.test(document.getElementById('stat-rate')!.textContent!));
    await page.uncheck('#repeat');
    const sent = await page.evaluate(() => Number(document.body.dataset.sent));
    // Stopped: every message sent comes back, and no more are sent.
    await page.waitForFunction((n) => Number(document.body.dataset.received) === n, sent);
    await closeWith(page, '1000', '');
    await page.waitForFunction(() => document.body.dataset.state === 'closed');
    expect(await page.evaluate(() => Number(document.body.dataset.sent))).to.equal(sent);
    expect(await page.isChecked('#repeat')).to.equal(false);
    expect(problems).to.deep.equal([]);
  });
});

