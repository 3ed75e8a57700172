#!/usr/bin/perl
# The jail agent: the one long-lived program of a session's jail (bubblewrap's pid 1 runs it as pid 2). The monitor
# asks it over descriptor 5 to start commands, gets their output back from it with flow control, and signals them
# through it. Starting a command is then a fork of this small process inside a jail that already exists: no new
# namespaces, mounts or cgroup migration per command. When the agent goes, bubblewrap's init goes and the kernel
# ends every process of the jail, so nothing outlives it.
#
# Perl, because it is on every Debian-based system (perl-base is essential) and starts in milliseconds with a few
# megabytes, where a Node process costs far more CPU and memory per session (bench/README.md). It loads no module
# but strict, since each module adds to every jail's start; the few constants it needs are Linux's (the same on
# x86-64 and arm64) and written out below. The wire format is described in agent-protocol.ts.
#
# Each command is started by one path: a SPAWN frame forks one process, which execs `/bin/sh -c <command>`. Nothing
# is ever forked again for the same frame, so a command runs at most once, and the agent says which: SPAWNED once the
# fork has become the shell, FAILED when it never did (see settle_start). A command that reports FAILED did not run.
#
# A command's stdin is /dev/null unless its SPAWN asks for a pipe (INPUT frames are written to it) or a terminal: a
# pseudo-terminal from /dev/ptmx whose other side becomes the command's stdin, stdout, stderr and controlling
# terminal, so that prompts, colours and full-screen programs behave as they do for a person.
use strict;

sub F_GETFD () { 1 }
sub F_SETFD () { 2 }
sub F_GETFL () { 3 }
sub F_SETFL () { 4 }
sub FD_CLOEXEC () { 1 }
sub O_NONBLOCK () { 0x800 }
sub O_RDWR () { 2 }
sub O_NOCTTY () { 0x100 }
sub WNOHANG () { 1 }
# Terminal ioctls (asm-generic and x86, which share them): the pty's number and lock, the controlling terminal, the
# window size.
sub TIOCGPTN () { 0x80045430 }
sub TIOCSPTLCK () { 0x40045431 }
sub TIOCSCTTY () { 0x540E }
sub TIOCSWINSZ () { 0x5414 }

my $CHANNEL_FD = 5;
# setrlimit(2)'s system call number on this architecture, from the monitor (0: unknown, no limits are sent).
my $SETRLIMIT = $ARGV[0] // 0;
# setsid(2)'s, which a command under a terminal needs to make it its controlling terminal (0: unknown, no terminals).
my $SETSID = $ARGV[1] // 0;
# Input bytes a command may have waiting in the agent; the monitor keeps within it (it counts WROTE frames).
my $INPUT_MAX = 1024 * 1024;
# Output bytes sent per stream before waiting for the monitor's acks.
my $WINDOW = 256 * 1024;
my $CHUNK = 64 * 1024;
# Signals whose default action ends a process: the group leader's death is deferred (see signal_group).
# (SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGTERM)
my %DEFERRED = map { $_ => 1 } (1, 2, 3, 10, 12, 15);
my $GRACE = 5;       # seconds
my $POLL = 0.02;     # seconds
my $EXEC_POLL = 0.001;    # seconds between looks at a fork that is inside execve (see settle_start)
# How young a command must be for its signals to be sent again to newcomers (see resend_to_newcomers), and for how
# long they are.
my $STARTING = 2;    # seconds

# Frame types.
sub SPAWN () { 1 }
sub SIGNAL () { 2 }
sub ACK () { 3 }
sub INPUT () { 4 }
sub CLOSE_INPUT () { 5 }
sub RESIZE () { 6 }
sub READY () { 10 }
sub SPAWNED () { 11 }
sub FAILED () { 12 }
sub DATA () { 13 }
sub EOF_ () { 14 }
sub EXIT () { 15 }
sub WROTE () { 16 }

# The agent's process name (comm), which its forks inherit and keep until they exec. It holds a "/", which no
# exec can give a process (the kernel names it after the last part of the program's path), so a process with this
# name has not become a command.
my $FORK_NAME = "jail/agent";
{
    open(my $comm, ">", "/proc/self/comm") or die "cannot name the agent: $!\n";
    print $comm $FORK_NAME or die "cannot name the agent: $!\n";
    close $comm or die "cannot name the agent: $!\n";
}

# Nothing the agent holds may reach a command: mark every inherited descriptor above stderr close-on-exec (Perl
# does so for the ones it opens), and drop the cgroup gate's.
for my $gate ([3, ">&="], [4, "<&="]) {    # bubblewrap writes --info-fd and reads --block-fd
    my ($fd, $mode) = @$gate;
    if (open(my $h, $mode, $fd)) {
        close $h;
    }
}
my @inherited;    # kept open: a handle going out of scope would close its descriptor
if (opendir(my $fds, "/proc/self/fd")) {
    my @numbers = grep { /^\d+$/ && $_ > 2 && $_ != fileno($fds) } readdir $fds;
    closedir $fds;
    for my $fd (@numbers) {
        next unless open(my $h, "<&=", $fd);
        my $flags = fcntl($h, F_GETFD, 0);
        fcntl($h, F_SETFD, $flags | FD_CLOEXEC) if defined $flags;
        push @inherited, $h;
    }
}
open(my $ctl, "+<&=", $CHANNEL_FD) or die "no channel on descriptor $CHANNEL_FD: $!\n";
binmode $ctl;

# SIGCHLD writes to a pipe that the main loop watches, so that no exit is missed between two selects.
pipe(my $wake_r, my $wake_w) or die "pipe: $!\n";
fcntl($wake_w, F_SETFL, fcntl($wake_w, F_GETFL, 0) | O_NONBLOCK);
$SIG{CHLD} = sub { syswrite($wake_w, "c") };
$SIG{PIPE} = "IGNORE";

# id => { pid, started, out => { 1 => fh, 2 => fh }, unacked => { 1 => n, 2 => n }, exited }, with a stdin: in (the
# agent's end, the terminal's master under a terminal), inbuf (input not written yet), close_in; under a terminal:
# tty (its master); and while the command is starting: starting, st (the status pipe, until it ends), why (what the
# fork wrote on it), signals (sent before it had started).
my %run;
my %by_pid;          # pid => id
my @timers;          # [due, code]
my %in_exec;         # id => 1: forks to look at again (see settle_start)
my $last_id = 0;     # ids only grow, so that no frame can start an id twice

# Seconds, to a hundredth, from /proc/uptime (perl has no finer clock without a module): kept open and read again
# from its start, two system calls rather than the six of opening it each time. Perl opens it close-on-exec.
open(my $uptime, "<", "/proc/uptime");

sub now {
    my $text;
    return time unless $uptime && defined sysseek($uptime, 0, 0) && sysread($uptime, $text, 64);
    return (split / /, $text)[0];
}

# Writes all of $data; false when the reader is gone.
sub write_all {
    my ($fh, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($fh, $data, length($data) - $off, $off);
        if (!defined $n) {
            next if $!{EINTR};
            return 0;
        }
        $off += $n;
    }
    return 1;
}

# Frames for the monitor wait in the outbox until the end of the main loop's turn and go out in one write: each
# write wakes the monitor, and a command's end is usually several frames (end of file on both streams, exit).
my $outbox = "";

sub put {
    my ($body) = @_;
    $outbox .= pack("N", length $body) . $body;
}

sub send_outbox {
    return unless length $outbox;
    my $data = $outbox;
    $outbox = "";
    shutdown_all() unless write_all($ctl, $data);
}

sub shutdown_all {
    for my $entry (values %run) {
        kill("KILL", $entry->{pid});
        kill("KILL", -$entry->{pid});
    }
    exit 0;
}

sub fail {
    my ($id, $message) = @_;
    put(pack("CN", FAILED, $id) . $message);
}

# The pipes between the agent and one command: its output, its stdin when it has one, and the status pipe on which
# the fork says why it cannot become the command (close-on-exec: it ends without a word when the exec succeeds).
# $stdin is "" (stdin is /dev/null), "pipe", or "tty COLS ROWS" (a pseudo-terminal instead of the output pipes).
# Returns the agent's ends and the fork's, or why they cannot be made.
sub command_pipes {
    my ($stdin) = @_;
    my ($st_r, $st_w);
    return "cannot create pipes: $!" unless pipe($st_r, $st_w);
    if ($stdin =~ /^tty (\d+) (\d+)$/) {
        my ($cols, $rows) = ($1, $2);
        return "no terminal: setsid's system call number is not known on this architecture" unless $SETSID;
        my $tty = open_pty($cols, $rows);
        return $tty unless ref $tty;
        my ($master, $slave) = @$tty;
        return ({ out => { 1 => $master }, in => $master, tty => $master, st => $st_r }, { tty => $slave, st => $st_w });
    }
    my ($out_r, $out_w, $err_r, $err_w);
    return "cannot create pipes: $!" unless pipe($out_r, $out_w) && pipe($err_r, $err_w);
    my $mine = { out => { 1 => $out_r, 2 => $err_r }, st => $st_r };
    my $theirs = { stdout => $out_w, stderr => $err_w, st => $st_w };
    if ($stdin eq "pipe") {
        return "cannot create pipes: $!" unless pipe(my $in_r, my $in_w);
        fcntl($in_w, F_SETFL, fcntl($in_w, F_GETFL, 0) | O_NONBLOCK);
        $mine->{in} = $in_w;
        $theirs->{stdin} = $in_r;
    }
    return ($mine, $theirs);
}

# A new pseudo-terminal of $cols x $rows: its master (the agent's, non-blocking) and its slave, or why not.
sub open_pty {
    my ($cols, $rows) = @_;
    sysopen(my $master, "/dev/ptmx", O_RDWR | O_NOCTTY) or return "cannot open /dev/ptmx: $!";
    # ioctl may write to its argument: each one is a variable of its own.
    my ($unlock, $number) = (pack("i", 0), pack("I", 0));
    ioctl($master, TIOCSPTLCK, $unlock) or return "cannot unlock the terminal: $!";
    ioctl($master, TIOCGPTN, $number) or return "cannot name the terminal: $!";
    $number = unpack("I", $number);
    set_size($master, $cols, $rows) or return "cannot size the terminal: $!";
    sysopen(my $slave, "/dev/pts/$number", O_RDWR | O_NOCTTY) or return "cannot open /dev/pts/$number: $!";
    fcntl($master, F_SETFL, fcntl($master, F_GETFL, 0) | O_NONBLOCK);
    return [$master, $slave];
}

sub set_size {
    my ($tty, $cols, $rows) = @_;
    my $size = pack("S4", $rows, $cols, 0, 0);
    return ioctl($tty, TIOCSWINSZ, $size);
}

# Closes the agent's ends of a command's pipes that are still open.
sub close_mine {
    my ($entry) = @_;
    close $_ for values %{ $entry->{out} };
    close $entry->{in} if $entry->{in} && !$entry->{tty};
    close $entry->{tty} if $entry->{tty};
    close $entry->{st} if $entry->{st};
    delete @$entry{qw(in tty st)};
    $entry->{out} = {};
}

sub start {
    my ($id, $spec) = @_;
    return if $id <= $last_id;    # the monitor never repeats an id; a frame that does is not obeyed
    $last_id = $id;
    my ($command, $cwd, $limits, $stdin, @env) = split(/\0/, $spec, -1);
    my ($mine, $theirs) = command_pipes($stdin // "");
    return fail($id, $mine) unless ref $mine;
    my $pid = fork();
    if (!defined $pid) {
        close_mine($mine);
        close $_ for values %$theirs;
        return fail($id, "cannot fork: $!");
    }
    become_command($mine, $theirs, $command, $cwd, $limits, @env) if $pid == 0;
    close $_ for values %$theirs;
    $run{$id} = {
        %$mine, pid => $pid, unacked => { 1 => 0, 2 => 0 }, exited => 0,
        starting => 1, why => "", signals => [], inbuf => "", close_in => 0,
    };
    $by_pid{$pid} = $id;
}

# In the fork: becomes `/bin/sh -c <command>` in its own process group (under a terminal, its own session, whose
# controlling terminal the terminal becomes), with exactly the given environment and rlimits, or says on the status
# pipe why it cannot and exits. Never returns.
sub become_command {
    my ($mine, $theirs, $command, $cwd, $limits, @env) = @_;
    $SIG{CHLD} = "DEFAULT";
    $SIG{PIPE} = "DEFAULT";
    close_mine($mine);
    close $_ for ($ctl, $wake_r, $wake_w);
    my $st = $theirs->{st};
    if (my $tty = $theirs->{tty}) {
        # A session of its own, led by the command, so that the terminal can be its controlling terminal; its
        # process group is then its pid, as for other commands.
        if (syscall($SETSID + 0) < 0) {
            syswrite($st, "cannot start a session: $!");
            exit 127;
        }
        if (!ioctl($tty, TIOCSCTTY, 0)) {
            syswrite($st, "cannot take the terminal: $!");
            exit 127;
        }
        open(STDIN, "<&", $tty);
        open(STDOUT, ">&", $tty);
        open(STDERR, ">&", $tty);
        close $tty;
    } else {
        setpgrp(0, 0);
        if ($theirs->{stdin}) {
            open(STDIN, "<&", $theirs->{stdin});
            close $theirs->{stdin};
        } else {
            open(STDIN, "<", "/dev/null");
        }
        open(STDOUT, ">&", $theirs->{stdout});
        open(STDERR, ">&", $theirs->{stderr});
    }
    if (!chdir $cwd) {
        my $why = ($!{ENOENT} || $!{ENOTDIR}) ? "working directory $cwd does not exist" : "cannot enter $cwd: $!";
        syswrite($st, $why);
        exit 127;
    }
    %ENV = map { split(/=/, $_, 2) } @env;
    # Set here, after the fork, so that the agent's own CPU time never counts against them; soft and hard alike, so
    # the command cannot raise them again.
    my $failed = set_limits($limits);
    if (defined $failed) {
        syswrite($st, "cannot set resource limit $failed: $!");
        exit 127;
    }
    exec { "/bin/sh" } ("/bin/sh", "-c", $command);
    syswrite($st, "cannot run /bin/sh: $!");
    exit 127;
}

# Sets "resource=value,..." as soft and hard rlimits of this process; the resource it could not set (with $!), or
# undef.
sub set_limits {
    my ($limits) = @_;
    for (split /,/, $limits) {
        my ($resource, $value) = split /=/;
        return $resource unless $SETRLIMIT && syscall($SETRLIMIT, $resource + 0, pack("QQ", $value, $value)) == 0;
    }
    return undef;
}

# The state letter and name of process $pid, from /proc/<pid>/stat (a zombie's too).
sub state_and_name {
    my ($pid) = @_;
    open(my $f, "<", "/proc/$pid/stat") or return ("", "");
    my $stat = do { local $/; <$f> } // "";
    my ($name, $state) = $stat =~ /^\d+ \((.*)\) (\S)/s;
    return ($state // "", $name // "");
}

# Reads what a starting command's fork wrote on its status pipe; at its end, settles the start.
sub read_status {
    my ($id) = @_;
    my $entry = $run{$id};
    my $n = sysread($entry->{st}, my $text, 512);
    return if !defined $n && $!{EINTR};
    if ($n) {
        $entry->{why} .= $text if length $entry->{why} < 512;
        return;
    }
    close $entry->{st};
    delete $entry->{st};
    settle_start($id);
}

# The status pipe has ended: the fork has either become the command or died without becoming it. Its name tells
# which (see $FORK_NAME): the kernel renames a process as execve succeeds, and a fork that died with the agent's name
# never ran a single instruction of the command. Its zombie is not reaped before this (reap skips starting
# commands), so the name is still there to read. A fork with the agent's name that is alive is inside execve, past
# closing its close-on-exec descriptors and short of its rename: it is looked at again a moment later (as is one
# whose /proc entry could not be read).
sub settle_start {
    my ($id) = @_;
    my $entry = $run{$id} or return;
    delete $in_exec{$id};
    my $why = $entry->{why};
    my ($state, $name) = $why eq "" ? state_and_name($entry->{pid}) : ("", "");
    if ($why eq "" && ($name eq "" || ($name eq $FORK_NAME && $state ne "Z"))) {
        $in_exec{$id} = 1;
        return;
    }
    if ($why ne "" || $name eq $FORK_NAME) {
        waitpid($entry->{pid}, 0);
        delete $by_pid{ $entry->{pid} };
        close_mine($entry);
        delete $run{$id};
        $why = "its process was killed before it became the command" if $why eq "";
        return fail($id, $why);
    }
    delete @$entry{qw(starting why)};
    my $signals = delete $entry->{signals};
    $entry->{started} = now();
    put(pack("CNN", SPAWNED, $id, $entry->{pid}));
    # Under a terminal stdout and stderr are one stream (fd 1); fd 2 has nothing to say.
    put(pack("CNC", EOF_, $id, 2)) if $entry->{tty};
    signal_group($entry, $_) for @$signals;
    reap();
}

sub settle {
    my ($id) = @_;
    my $entry = $run{$id} or return;
    return unless $entry->{exited} && !%{ $entry->{out} };
    drop_input($id, $entry);
    close_mine($entry);
    delete $run{$id};
}

# Input that can no longer be written is dropped, and said to be: the monitor counts what is waiting here.
sub drop_input {
    my ($id, $entry) = @_;
    my $n = length($entry->{inbuf} // "");
    $entry->{inbuf} = "";
    put(pack("CNN", WROTE, $id, $n)) if $n;
}

# Writes what a command's stdin can take now; closes it once asked and nothing is left to write.
sub write_input {
    my ($id, $entry) = @_;
    my $n = syswrite($entry->{in}, $entry->{inbuf});
    if (!defined $n) {
        return if $!{EINTR} || $!{EAGAIN};
        # The command closed its stdin (or its terminal is gone): nothing more reaches it.
        drop_input($id, $entry);
        close_input($entry);
        return;
    }
    substr($entry->{inbuf}, 0, $n) = "";
    put(pack("CNN", WROTE, $id, $n));
    close_input($entry) if $entry->{close_in} && !length $entry->{inbuf};
}

sub close_input {
    my ($entry) = @_;
    return unless $entry->{in};
    close $entry->{in} unless $entry->{tty};
    delete $entry->{in};
}

# Reaps the commands that have exited. Not those still starting: their zombies tell how they ended (settle_start).
sub reap {
    for my $pid (keys %by_pid) {
        my $id = $by_pid{$pid};
        my $entry = $run{$id};
        next if $entry->{starting};
        next unless waitpid($pid, WNOHANG) > 0;
        my $status = $?;
        delete $by_pid{$pid};
        $entry->{exited} = 1;
        # A command does not outlive itself: what it left in its group (background jobs) ends with it, and the
        # monitor is told how many were still running. The group is only listed when it is not empty.
        my $left = 0;
        if (kill(0, -$pid)) {
            my %members = group_members($pid);
            $left = keys %members;
        }
        kill("KILL", -$pid);
        my ($code, $signal) = ($status & 0x7f) == 0 ? ($status >> 8, 0) : (-1, $status & 0x7f);
        put(pack("CNl>Cn", EXIT, $id, $code, $signal, $left > 65535 ? 65535 : $left));
        settle($id);
    }
}

# The jail's processes in process group $pgid, as pid => command name (the jail's /proc shows its own pid namespace
# only).
sub group_members {
    my ($pgid) = @_;
    my %members;
    opendir(my $proc, "/proc") or return ();
    for my $name (readdir $proc) {
        next unless $name =~ /^\d+$/;
        open(my $f, "<", "/proc/$name/stat") or next;
        my $stat = do { local $/; <$f> } // next;
        # The command name may contain spaces and parentheses: fields resume after the last ")".
        my $open = index($stat, "(");
        my $close = rindex($stat, ")");
        my @fields = split / /, substr($stat, $close + 2);
        $members{$name + 0} = substr($stat, $open + 1, $close - $open - 1)
            if ($fields[2] // -1) == $pgid && $fields[0] ne "Z";
    }
    closedir $proc;
    return %members;
}

# Whether $pid has a handler for signal $signum (SigCgt in /proc/<pid>/status).
sub catches {
    my ($pid, $signum) = @_;
    open(my $f, "<", "/proc/$pid/status") or return 0;
    my $status = do { local $/; <$f> } // "";
    my ($mask) = $status =~ /^SigCgt:\s*([0-9a-f]+)$/m or return 0;
    return (hex($mask) >> ($signum - 1)) & 1;
}

# Signals a command's process group. A command still starting gets its signals once it has (SIGKILL at once, to
# its fork, which then never becomes the command). For terminating signals one subtlety: the command is
# `/bin/sh -c` (the group leader), and its group is ended once the leader exits. A shell that dies of SIGTERM at
# once would cut short the program it runs while that program handles the same signal. So when the leader would die
# of the signal and has company, it is stopped first, the others get the signal, and the leader gets it (and
# SIGCONT) once they are gone or after a grace period: the program's handler runs to completion, and the shell cannot
# move on meanwhile.
sub signal_group {
    my ($entry, $signum) = @_;
    my $pgid = $entry->{pid};
    if ($entry->{starting}) {
        push @{ $entry->{signals} }, $signum;
        kill("KILL", $pgid) if $signum == 9;
        return;
    }
    if (!$DEFERRED{$signum}) {
        kill($signum, -$pgid);
        return;
    }
    my %members = group_members($pgid);
    my @others = grep { $_ != $pgid } keys %members;
    if ($entry->{exited} || !@others || catches($pgid, $signum)) {
        kill($signum, -$pgid);
        resend_to_newcomers($entry, \%members, $signum, now() + $STARTING) if now() - $entry->{started} < $STARTING;
        return;
    }
    kill("STOP", $pgid);
    kill($signum, $_) for @others;
    my %waiting = map { $_ => 1 } @others;
    my $deadline = now() + $GRACE;
    my $release;
    $release = sub {
        return if $entry->{exited};
        my %left = group_members($pgid);
        if ((grep { $waiting{$_} } keys %left) && now() < $deadline) {
            push @timers, [now() + $POLL, $release];
            return;
        }
        kill($signum, $pgid);
        kill("CONT", $pgid);
    };
    push @timers, [now() + $POLL, $release];
}

# A command signalled as it starts can miss it. A shell that has not forked yet may catch SIGINT and then fork a
# child that never got it (and wait for it); a child forked but not yet running its program catches the signal
# with the shell's handler, then loses it when it execs. So for a command signalled within its first seconds,
# processes that join the group, or run a new program since they were signalled, get the signal too for a while.
# (Later, a group that handles the signal, say a shell running a cleanup trap, is left to do so.)
sub resend_to_newcomers {
    my ($entry, $signalled, $signum, $deadline) = @_;
    return if $entry->{exited} || now() > $deadline;
    push @timers, [now() + $POLL, sub {
        return if $entry->{exited};
        my %members = group_members($entry->{pid});
        while (my ($pid, $name) = each %members) {
            next if defined $signalled->{$pid} && $signalled->{$pid} eq $name;
            $signalled->{$pid} = $name;
            kill($signum, $pid);
        }
        resend_to_newcomers($entry, $signalled, $signum, $deadline);
    }];
}

sub dispatch {
    my ($body) = @_;
    my $type = unpack("C", $body);
    if ($type == SPAWN) {
        my ($id, $fields) = unpack("x N a*", $body);
        start($id, $fields);
    } elsif ($type == SIGNAL) {
        my ($id, $signum) = unpack("x N C", $body);
        signal_group($run{$id}, $signum) if $run{$id};
    } elsif ($type == ACK) {
        my ($id, $fd, $bytes) = unpack("x N C N", $body);
        my $entry = $run{$id} or return;
        $entry->{unacked}{$fd} = ($entry->{unacked}{$fd} // 0) - $bytes;
        $entry->{unacked}{$fd} = 0 if $entry->{unacked}{$fd} < 0;
    } elsif ($type == INPUT) {
        my ($id, $data) = unpack("x N a*", $body);
        my $entry = $run{$id};
        if (!$entry || !$entry->{in} || $entry->{close_in} || length($entry->{inbuf}) + length($data) > $INPUT_MAX) {
            put(pack("CNN", WROTE, $id, length $data)) if length $data;
            return;
        }
        $entry->{inbuf} .= $data;
    } elsif ($type == CLOSE_INPUT) {
        my ($id) = unpack("x N", $body);
        my $entry = $run{$id} or return;
        return unless $entry->{in} && !$entry->{close_in};
        # A terminal's stdin ends when it reads end-of-file (Ctrl-D at the start of a line); a pipe is closed.
        if ($entry->{tty}) {
            $entry->{inbuf} .= "\x04";
        } else {
            $entry->{close_in} = 1;
            close_input($entry) unless length $entry->{inbuf};
        }
    } elsif ($type == RESIZE) {
        my ($id, $cols, $rows) = unpack("x N n n", $body);
        my $entry = $run{$id} or return;
        set_size($entry->{tty}, $cols, $rows) if $entry->{tty};
    }
}

my $inbox = "";
put(pack("C", READY));

while (1) {
    send_outbox();
    my $rin = "";
    my $win = "";
    vec($rin, fileno($ctl), 1) = 1;
    vec($rin, fileno($wake_r), 1) = 1;
    for my $entry (values %run) {
        if ($entry->{starting}) {
            vec($rin, fileno($entry->{st}), 1) = 1 if $entry->{st};
            next;
        }
        for my $fd (keys %{ $entry->{out} }) {
            vec($rin, fileno($entry->{out}{$fd}), 1) = 1 if $entry->{unacked}{$fd} < $WINDOW;
        }
        vec($win, fileno($entry->{in}), 1) = 1 if $entry->{in} && length $entry->{inbuf};
    }
    my $timeout;
    if (@timers) {
        my $next = (sort { $a <=> $b } map { $_->[0] } @timers)[0];
        $timeout = $next - now();
        $timeout = 0 if $timeout < 0;
    }
    $timeout = $EXEC_POLL if %in_exec && (!defined $timeout || $timeout > $EXEC_POLL);
    my ($rout, $wout);
    my $ready = select($rout = $rin, $wout = $win, undef, $timeout);
    if ($ready < 0) {
        next if $!{EINTR};
        die "select: $!\n";
    }
    if (vec($rout, fileno($wake_r), 1)) {
        sysread($wake_r, my $drain, 4096);
        reap();
    }
    settle_start($_) for keys %in_exec;
    if (@timers) {
        my $t = now();
        my @due = grep { $_->[0] <= $t } @timers;
        @timers = grep { $_->[0] > $t } @timers;
        $_->[1]->() for @due;
    }
    # A process's streams end as it exits, just before its parent is told: its exit is then most likely waiting
    # already, and goes out in the same write as the end of its output.
    my $ended = 0;
    for my $id (sort { $a <=> $b } keys %run) {
        my $entry = $run{$id} or next;
        if ($entry->{starting}) {
            read_status($id) if $entry->{st} && vec($rout, fileno($entry->{st}), 1);
            next;
        }
        write_input($id, $entry) if $entry->{in} && length $entry->{inbuf} && vec($wout, fileno($entry->{in}), 1);
        # Both streams ready at once: stdout first, the order in which programs usually write.
        for my $fd (sort keys %{ $entry->{out} }) {
            my $fh = $entry->{out}{$fd};
            next unless vec($rout, fileno($fh), 1);
            my $n = sysread($fh, my $chunk, $CHUNK);
            next if !defined $n && $!{EINTR};
            if (!$n) {
                # A terminal's master reads EIO once the command and all it started have closed the terminal.
                if ($entry->{tty} && $fh == $entry->{tty}) {
                    drop_input($id, $entry);
                    delete $entry->{in};
                    delete $entry->{tty};
                }
                close $fh;
                delete $entry->{out}{$fd};
                put(pack("CNC", EOF_, $id, $fd));
                settle($id);
                $ended = 1;
                next;
            }
            $entry->{unacked}{$fd} += $n;
            put(pack("CNC", DATA, $id, $fd) . $chunk);
        }
    }
    reap() if $ended;
    if (vec($rout, fileno($ctl), 1)) {
        my $n = sysread($ctl, $inbox, 65536, length $inbox);
        next if !defined $n && $!{EINTR};
        # The monitor closed the channel or died: nothing may outlive it. Ending the agent ends the jail.
        shutdown_all() if !$n;
        while (length $inbox >= 4) {
            my $size = unpack("N", $inbox);
            last if length $inbox < 4 + $size;
            my $body = substr($inbox, 4, $size);
            substr($inbox, 0, 4 + $size) = "";
            dispatch($body);
        }
    }
}
