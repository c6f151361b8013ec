using Monitor.Cli;

return await MonitorCommand.InvokeAsync(args);
