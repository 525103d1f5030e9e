// GET /spam?kb=N writes N KiB to stdout, the way a chatty app logs.
module.exports = (app) => {
  app.router.get('/spam', async (ctx) => {
    const kb = Math.max(0, Math.min(4096, Number(ctx.query.kb) || 0));
    const line = `${'x'.repeat(1022)}\n`;
    for (let i = 0; i < kb; i++) {
      process.stdout.write(`${i % 10}${line}`);
    }
    ctx.body = { pid: process.pid, bytes: kb * 1024 };
  });
  app.router.get('/', async (ctx) => {
    ctx.body = { pid: process.pid };
  });
};
