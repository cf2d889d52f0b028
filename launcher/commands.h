// commands.h - the subcommands of `internvl`. Each is defined in launcher/cmd_<name>.c.
// They are weak so the executable links while a subcommand is still being written; main()
// lists only the ones that exist.
#ifndef IVL_LAUNCHER_COMMANDS_H
#define IVL_LAUNCHER_COMMANDS_H

#define IVL_VERSION "0.1.0"

int cmd_convert(int argc, char **argv) __attribute__((weak));
int cmd_info(int argc, char **argv) __attribute__((weak));
int cmd_forward(int argc, char **argv) __attribute__((weak));
int cmd_chat(int argc, char **argv) __attribute__((weak));
int cmd_caption(int argc, char **argv) __attribute__((weak));
int cmd_bench(int argc, char **argv) __attribute__((weak));
int cmd_serve(int argc, char **argv) __attribute__((weak));

#endif
