// The benchmark workloads as one Restate service. Each step is a `ctx.run`
// (a journaled, durable step); the fan-out runs its steps concurrently and
// joins them with RestatePromise.all, Restate's documented way to do both.
// The wait workload is a workflow: its run creates an awakeable (resolved
// from outside through the ingress) and hands the awakeable's id to the
// `awakeable` handler through a durable promise, Restate's way to signal
// between a workflow's handlers.
import * as restate from "@restatedev/restate-sdk";

const addOne = (value) => value + 1;

async function chain(ctx, start, steps) {
  let value = start;
  for (let i = 0; i < steps; i++) {
    const input = value;
    value = await ctx.run(`step${i}`, () => addOne(input));
  }
  return value;
}

const bench = restate.service({
  name: "bench",
  handlers: {
    three: async (ctx, start) => chain(ctx, start, 3),
    chain40: async (ctx, start) => chain(ctx, start, 40),
    fanout1000: async (ctx, start) => {
      const steps = [];
      for (let i = 0; i < 1000; i++) {
        steps.push(ctx.run(`w${i}`, () => addOne(start)));
      }
      const values = await restate.RestatePromise.all(steps);
      return values.reduce((sum, value) => sum + value, 0);
    },
  },
});

const waiter = restate.workflow({
  name: "waiter",
  handlers: {
    run: async (ctx, start) => {
      const { id, promise } = ctx.awakeable();
      await ctx.promise("awakeable").resolve(id);
      const event = await promise;
      return ctx.run("step", () => addOne(start + event));
    },
    // Answers once the run waits on its awakeable.
    awakeable: async (ctx) => ctx.promise("awakeable").get(),
  },
});

const port = Number(process.env.PORT ?? 9080);
restate.serve({ services: [bench, waiter], port });
