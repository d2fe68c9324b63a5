import { registry } from "@web/core/registry";
import { session } from "@web/session";

// 19.0 wants steps that reload the page to say so (expectUnloadPage); 18.0's
// step schema rejects that key. The one series difference of this tour.
const reloads = session.server_version_info[0] >= 19 ? { expectUnloadPage: true } : {};

function openTechnicalMenu(xmlid, content) {
    return [
        {
            content: "Open Settings > Technical (debug mode)",
            trigger: ".o_main_navbar [data-menu-xmlid='base.menu_custom']",
            run: "click",
        },
        {
            content,
            trigger: `[data-menu-xmlid='${xmlid}']`,
            run: "click",
        },
    ];
}

registry.category("web_tour.tours").add("memory_hygiene_diagnostics_tour", {
    url: "/odoo/settings?debug=1",
    steps: () => [
        ...openTechnicalMenu(
            "memory_hygiene.memory_diagnostics_menu",
            "Open Memory Hygiene > Diagnostics"
        ),
        {
            content: "The page lists this server's processes",
            trigger: ".o_memory_diagnostics div[name=process_ids] .o_data_row",
        },
        {
            content: "Go to the actions on this worker",
            trigger: ".o_memory_diagnostics .o_notebook .nav-link:contains(This worker)",
            run: "click",
        },
        {
            content: "Dump the stacks of this worker",
            trigger: ".o_memory_diagnostics button[name=action_dump_stacks]",
            run: "click",
        },
        {
            content: "The stack dump is shown, with Odoo's per-thread header",
            trigger: ".o_memory_diagnostics div[name=output_title]:contains(Thread stacks)",
        },
        {
            content: "... and the threads' stacks",
            trigger: ".o_memory_diagnostics div[name=output]:contains(# Thread:):contains((db:)",
        },
        ...openTechnicalMenu("memory_hygiene.memory_hygiene_settings_menu", "Open Memory Hygiene > Settings"),
        {
            content: "Change the sampling interval",
            trigger: "#memory_hygiene_sampling div[name=memory_snapshot_interval] input",
            run: "edit 7",
        },
        {
            content: "Save the settings",
            trigger: ".o_form_button_save",
            run: "click",
            ...reloads,
        },
        {
            content: "The saved value is back after the reload",
            trigger: "#memory_hygiene_sampling div[name=memory_snapshot_interval] input:value(7)",
        },
    ],
});
