// The glossary: the lab's terms with their Chinese names.
import { h } from "./run.js";

const terms = [
  ["Process", "进程", "A running program with its own address space, files and at least one thread. Switching between two means switching page tables."],
  ["Thread", "线程", "A path of execution inside a process, scheduled by the kernel. Threads of one process share its memory; each has its own stack."],
  ["Coroutine", "协程", "A function that can pause and resume without the kernel's help; switching between coroutines is a jump in user space."],
  ["Goroutine", "Go 协程", "Go's coroutine: started with go f(), given a small stack that grows, and multiplexed by Go's runtime onto a few OS threads."],
  ["Context switch", "上下文切换", "Saving one task's registers and state and loading another's so it can run on the same core."],
  ["User mode / kernel mode", "用户态 / 内核态", "The CPU's two privilege levels; a system call crosses from the first into the second and back."],
  ["Scheduler", "调度器", "The part of the kernel (or of a runtime) that decides which ready task runs next, and for how long."],
  ["Preemption", "抢占", "Taking the CPU away from a running task before it gives it up, when its slice ends or a more urgent task arrives."],
  ["Time slice (quantum)", "时间片", "How long a task may run before the scheduler considers someone else."],
  ["FCFS", "先来先服务", "Run tasks in arrival order, each to the end of its burst."],
  ["SJF / SRTF", "短作业优先 / 最短剩余时间优先", "Run the shortest job next; SRTF also preempts when a shorter one arrives."],
  ["Round robin", "时间片轮转", "Give each ready task one time slice in turn."],
  ["Priority scheduling", "优先级调度", "Run the most urgent task; aging (老化) raises a waiting task's priority so it cannot starve."],
  ["MLFQ", "多级反馈队列", "Several round-robin queues by priority; a task that uses up its allotment moves down, and a periodic boost lifts everyone back up."],
  ["Lottery scheduling", "彩票调度", "Each task holds tickets; a random draw picks who runs, so CPU share follows the ticket share."],
  ["Starvation", "饥饿", "A ready task that never gets to run because others always come first."],
  ["Concurrency", "并发", "Several tasks in progress at once, taking turns or not: a way of structuring work."],
  ["Parallelism", "并行", "Several tasks executing at the same instant on different cores: a way of running it."],
  ["Race condition", "竞态条件", "A result that depends on the timing of two tasks touching the same data."],
  ["Lost update", "丢失更新", "Two tasks read the same value and both write back their change: one change disappears."],
  ["Critical section", "临界区", "Code that touches shared state and must run in one task at a time."],
  ["Mutex", "互斥锁", "A lock only one holder can own; others wait until it is released."],
  ["Read-write lock", "读写锁", "A lock many readers may share, but a writer holds alone."],
  ["Spinlock", "自旋锁", "A lock whose waiters loop, testing it, instead of sleeping."],
  ["Semaphore", "信号量", "A counter of permits: acquire takes one (waiting if none are left), release returns it."],
  ["Condition variable", "条件变量", "A place to sleep until another task signals that the state you wait for may have changed."],
  ["Atomic operation", "原子操作", "An operation other cores see as having happened entirely or not at all."],
  ["Compare-and-swap (CAS)", "比较并交换", "Write a new value only if the word still holds the expected old one; the building block of lock-free code."],
  ["Lock-free", "无锁", "A structure where some task always makes progress, because nobody holds a lock others must wait for."],
  ["Deadlock", "死锁", "Tasks each holding something another needs, all waiting forever."],
  ["IPC", "进程间通信", "Ways processes exchange data: pipes (管道), sockets, shared memory, signals, message queues."],
  ["Event loop", "事件循环", "One thread that waits for many events (sockets ready, timers) and runs a handler for each."],
  ["async / await", "异步 / 等待", "Syntax for writing code that pauses on I/O without blocking its thread."],
  ["GMP", "GMP 模型", "Go's scheduler: G goroutines run on M machine threads, each holding one of GOMAXPROCS P processors with its own run queue."],
  ["Stack", "栈", "Memory for a function's local variables and return addresses; a thread's is fixed in size, a goroutine's grows."],
  ["RSS / PSS", "常驻内存 / 按比例分摊内存", "Memory pages actually in RAM for a process; PSS divides shared pages among the processes sharing them."],
  ["Virtual memory", "虚拟内存", "Address space a process has reserved; it costs RAM only once touched."],
];

export async function glossary(root) {
  root.append(
    h("h1", {}, "Glossary 术语表"),
    h("p", {}, "The terms of the lab, in English and in Chinese, each in a sentence or two."),
    h("dl", { class: "glossary", id: "glossary" }, terms.flatMap(([en, zh, def]) => [h("dt", {}, en, h("span", { lang: "zh" }, zh)), h("dd", {}, def)])),
  );
}
