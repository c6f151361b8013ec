using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Monitor.Contracts;
using Monitor.ControlPlane;
using StackExchange.Redis;

namespace Monitor.Service;

/// <summary>
/// The control plane over HTTP, under <c>/api</c>: runs with their metadata (lineage) and their ranks' heartbeats,
/// catalogs, selections (read and write) and the audit trail. Writes (<c>PUT</c>, <c>DELETE</c>) need <c>Authorization: Bearer {token}</c> with the
/// write token (401 otherwise; with no token configured every write is refused); reads are checked for the whole
/// <c>/api</c> group by the caller (see <see cref="ApiAuthorization"/>).
/// </summary>
internal static class ControlPlaneApi
{
    /// <summary>Header naming who makes a change (recorded in the audit trail); default <c>api</c>.</summary>
    public const string WhoHeader = "X-Monitor-Who";

    /// <summary>Maps the endpoints under <paramref name="api"/> (the <c>/api</c> group).</summary>
    public static void Map(RouteGroupBuilder api, SelectionStore? store, ApiAuthorization authorization)
    {
        api.MapGet("/runs", async () => await Guard(store, async s =>
        {
            var runs = new List<object>();
            foreach (string run in await s.RunsAsync())
            {
                runs.Add(new { run, workers = await s.WorkersAsync(run) });
            }

            return Json(runs);
        }));
        // The run's lineage: each rank's metadata (hyperparameters, data sets, code and library versions, host, devices,
        // parent run) and the artifacts the ranks consumed and produced.
        api.MapGet("/runs/{run}", async (string run) => await Guard(store, async s =>
            await s.MetadataAsync(run) is { Count: > 0 } metadata
                ? Json(new { run, metadata, artifacts = await s.ArtifactsAsync(run) })
                : Results.NotFound(new { error = $"no run metadata stored for run '{run}'" })));
        api.MapGet("/runs/{run}/workers", async (string run) => await Guard(store, async s => Json(await s.WorkersAsync(run))));
        api.MapGet("/runs/{run}/catalog", async (string run, int? rank) => await Guard(store, async s =>
        {
            IEnumerable<int> ranks = rank is { } one ? [one] : (await s.WorkersAsync(run)).Select(w => w.Rank);
            var catalogs = new SortedDictionary<string, IReadOnlyList<CatalogEntry>>(StringComparer.Ordinal);
            foreach (int r in ranks)
            {
                catalogs[r.ToString(System.Globalization.CultureInfo.InvariantCulture)] = await s.CatalogAsync(run, r);
            }

            return Json(catalogs);
        }));
        api.MapGet("/runs/{run}/selection", async (string run, int? rank) => await Guard(store, async s =>
            await s.GetAsync(run, rank) is { } effective
                ? Json(new { selection = effective.Selection, rank = effective.Rank })
                : Results.NotFound(new { error = $"no selection stored for run '{run}'" })));
        api.MapGet("/runs/{run}/history", async (string run, int? count) => await Guard(store, async s => Json(await s.HistoryAsync(run, count ?? 100))));
        api.MapPut("/runs/{run}/selection", async (HttpContext context, string run, [FromQuery] int[]? rank) =>
        {
            if (authorization.RequireWrite(context) is { } refusal)
            {
                return refusal;
            }

            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            string body = await reader.ReadToEndAsync(context.RequestAborted);
            return await Guard(store, async s =>
            {
                TraceSelection selection = SelectionJson.Parse(body);
                TraceSelection stored = await s.SetAsync(run, selection, Change(context), rank ?? [], context.RequestAborted);
                return Json(stored);
            });
        });
        api.MapDelete("/runs/{run}/selection", async (HttpContext context, string run, int rank) =>
        {
            if (authorization.RequireWrite(context) is { } refusal)
            {
                return refusal;
            }

            return await Guard(store, async s => await s.ClearRankAsync(run, rank, Change(context), context.RequestAborted)
                ? Results.NoContent()
                : Results.NotFound(new { error = $"rank {rank} of run '{run}' has no selection of its own" }));
        });
    }

    private static SelectionChange Change(HttpContext context) =>
        new(context.Request.Headers[WhoHeader] is { Count: > 0 } who ? who.ToString() : "api", "api");

    private static async Task<IResult> Guard(SelectionStore? store, Func<SelectionStore, Task<IResult>> action)
    {
        if (store is null)
        {
            return Results.Json(new { error = "the control plane is not configured (--redis)" }, statusCode: StatusCodes.Status503ServiceUnavailable);
        }

        try
        {
            return await action(store);
        }
        catch (SelectionValidationException ex)
        {
            return Results.Json(new { error = "invalid selection; nothing was stored", problems = ex.Problems }, statusCode: StatusCodes.Status400BadRequest);
        }
        catch (ArgumentException ex)
        {
            return Results.Json(new { error = ex.Message }, statusCode: StatusCodes.Status400BadRequest);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return Results.Json(new { error = "the control plane (Redis) is unreachable: " + ex.Message }, statusCode: StatusCodes.Status503ServiceUnavailable);
        }
    }

    private static IResult Json(object value) => Results.Json(value, SelectionJson.Options);
}
